import { Command } from "commander";
import { positiveInteger } from "../options.ts";
import { setLogLevel } from "../../base/log.ts";
import { runEnvironment } from "../environment.ts";
import { BACKEND_VARIABLES, DATASET_VARIABLES, environmentHelp } from "../help.ts";

export function command(): Command {
  return new Command("run")
    .argument("<rolloutjob.yaml>", "a RolloutJob manifest (the YAML you would kubectl apply)")
    .option("--pool <sandboxpool.yaml>", "a SandboxPool manifest; a local pool when unset")
    .option("--out <dir>", "where scored.jsonl and summary.json go", "out")
    .option("--concurrency <n>", "trajectories at once (default: runners.replicas × trajectoriesPerRunner)", positiveInteger)
    .addHelpText(
      "after",
      environmentHelp(
        [
          ["OPENAI_API_KEY", "the model endpoint's key when the job names model.apiKeySecretRef (HERMES_MODEL_API_KEY also works)"],
          ["HERMES_SANDBOX_TOKEN", "the token Nomad pools' sandbox servers answer (default: a fresh random one)"],
          ...DATASET_VARIABLES,
          ...BACKEND_VARIABLES,
        ],
        { defaultLogLevel: "warn" },
      ),
    )
    .action(async (jobPath: string, opts: { pool?: string; out: string; concurrency?: number }) => {
      // JSON logs would drown the progress display; LOG_LEVEL still wins when set.
      setLogLevel(process.env.LOG_LEVEL ?? "warn");
      const { runJob } = await import("../../local/job.ts");
      const controller = new AbortController();
      const stop = (): void => controller.abort(new Error("interrupted"));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      const summary = await runJob({
        jobPath,
        ...(opts.pool ? { poolPath: opts.pool } : {}),
        outDir: opts.out,
        ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
        signal: controller.signal,
        environment: runEnvironment(process.env),
      });
      const line =
        `${summary.job}: ${summary.groups}/${summary.items} items scored, ${summary.failed} failed, ` +
        (summary.filtered > 0 ? `${summary.filtered} rows filtered (no test profile can run them), ` : "") +
        `${summary.trajectories} trajectories, pass rate ${(summary.passRate * 100).toFixed(1)}%, mean score ` +
        `${summary.meanScore.toFixed(3)}, ${summary.durationSeconds}s; results in ${opts.out}`;
      process.stdout.write(`${line}\n`);
      if (!summary.succeeded) {
        for (const f of summary.failures) process.stderr.write(`failed: ${f.item}: ${f.error}\n`);
        process.exitCode = 1;
      }
    });
}
