import { Command } from "commander";

// Placeholder until this role lands; it says so instead of pretending to work.
export function command(): Command {
  return new Command("run").action(() => {
    throw new Error("hermes-rollouts run is not built yet");
  });
}
