import { Command } from "commander";
import { readFileSync } from "node:fs";
import { setLogLevel } from "../base/log.ts";

/**
 * One CLI for every role. Each sub-command lives in `src/cli/commands/<name>.ts` and is imported only when it
 * runs, so `hermes-rollouts runner` never loads the controller's or the mock server's code.
 */
const roles: Record<string, string> = {
  run: "Run a RolloutJob YAML on this machine, no cluster needed",
  controller: "Run the operator (SandboxPool and RolloutJob reconcilers, runners' API)",
  runner: "Run a runner pod's agent loop against the runners' API",
  "mock-modal": "Serve a mock Modal control plane and command router for tests and kind CI",
  "sandbox-server": "Serve M slots over HTTP (the process each Nomad allocation and Kubernetes sandbox pod runs)",
  inject: "Copy node and this app into a directory (a Nomad docker pool's prestart task)",
  "model-server": "Serve the built-in OpenAI-compatible model endpoint (oracle and noop policies)",
  "fake-nomad": "Serve a fake Nomad HTTP API that runs sandbox servers as local processes (tests only)",
};

const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

export async function main(argv: readonly string[]): Promise<void> {
  setLogLevel(process.env.LOG_LEVEL ?? "info");
  const program = new Command("hermes-rollouts").version(version).description("Agentic-RL rollouts on warm sandbox slots");
  // `hermes-rollouts help <role>` must load the role too, or commander describes an empty stub.
  const name = argv[2] === "help" ? argv[3] : argv[2];
  if (name !== undefined && name in roles) {
    const mod = (await import(`./commands/${name}.ts`)) as { command: () => Command };
    program.addCommand(mod.command().description(roles[name] ?? ""));
  } else {
    for (const [role, description] of Object.entries(roles)) program.command(role).description(description);
  }
  await program.parseAsync([...argv]);
}
