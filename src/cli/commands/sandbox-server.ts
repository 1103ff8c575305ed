import { Command } from "commander";

// Placeholder until this role lands; it says so instead of pretending to work.
export function command(): Command {
  return new Command("sandbox-server").action(() => {
    throw new Error("hermes-rollouts sandbox-server is not built yet");
  });
}
