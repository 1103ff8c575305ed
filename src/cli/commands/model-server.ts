import { Command, Option } from "commander";
import { portNumber } from "../options.ts";
import { environmentHelp } from "../help.ts";

export function command(): Command {
  return new Command("model-server")
    .option("--port <port>", "port to listen on (0: any free port)", portNumber, 8080)
    .option("--host <host>", "address to bind", "127.0.0.1")
    .addOption(
      new Option("--policy <policy>", "oracle applies each task's gold patch; noop never acts")
        .choices(["oracle", "noop"])
        .default("oracle"),
    )
    .addOption(
      new Option("--format <format>", "tool-call format of answers (auto: native when the request offers tools)")
        .choices(["auto", "native", "hermes"])
        .default("auto"),
    )
    .option("--dataset <jsonl>", "items the oracle policy can solve (found by id in the prompt)")
    .option("--env <name>", "environment that reads the dataset's rows", "swe-smith-oracle")
    .option("--model <name>", "model name listed by /v1/models", "hermes")
    .addHelpText("after", environmentHelp([]))
    .action(
      async (opts: {
        port: number;
        host: string;
        policy: "oracle" | "noop";
        format: "auto" | "native" | "hermes";
        dataset?: string;
        env: string;
        model: string;
      }) => {
        const { startModelServer } = await import("../../model-server/server.ts");
        const { getEnvironment } = await import("../../envs/index.ts");
        const { jsonlFileSource } = await import("../../envs/datasets/index.ts");
        const tasks = [];
        if (opts.dataset) {
          const env = getEnvironment(opts.env);
          for await (const row of jsonlFileSource(opts.dataset).rows()) {
            const item = env.parseItem(row);
            const commands = env.oracleCommands(item);
            if (commands) tasks.push({ id: env.itemId(item), prompt: env.prompt(item).user, commands });
          }
        }
        const server = await startModelServer({
          policy: opts.policy,
          format: opts.format,
          tasks,
          port: opts.port,
          host: opts.host,
          model: opts.model,
        });
        process.stdout.write(`model server (${opts.policy}, ${tasks.length} tasks) at ${server.baseURL}\n`);
        const stop = (): void => void server.close().then(() => process.exit(0));
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      },
    );
}
