import { Command } from "commander";

// Placeholder until this role lands; it says so instead of pretending to work.
export function command(): Command {
  return new Command("mock-modal").action(() => {
    throw new Error("hermes-rollouts mock-modal is not built yet");
  });
}
