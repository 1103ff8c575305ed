import { Command } from "commander";

// Placeholder until this role lands; it says so instead of pretending to work.
export function command(): Command {
  return new Command("fake-nomad").action(() => {
    throw new Error("hermes-rollouts fake-nomad is not built yet");
  });
}
