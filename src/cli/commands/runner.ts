import { Command } from "commander";

// Placeholder until this role lands; it says so instead of pretending to work.
export function command(): Command {
  return new Command("runner").action(() => {
    throw new Error("hermes-rollouts runner is not built yet");
  });
}
