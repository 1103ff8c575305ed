import { Command } from "commander";
import { runRunner } from "../../runner/loop.ts";
import { logger } from "../../base/log.ts";
import { environmentHelp } from "../help.ts";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the controller sets it on runner pods)`);
  return value;
}

/** `hermes-rollouts runner`: the runner pod's entrypoint; everything it needs comes from the pod's env. */
export function command(): Command {
  return new Command("runner")
    .addHelpText(
      "after",
      environmentHelp(
        [
          ["HERMES_API_URL", "the runners' API of the leading controller"],
          ["HERMES_JOB_NAMESPACE", "namespace of the RolloutJob"],
          ["HERMES_JOB_NAME", "name of the RolloutJob"],
          ["HERMES_JOB_TOKEN", "the job's bearer token for the runners' API"],
          ["HERMES_RUNNER_ID", "this runner's name in leases and logs (default runner-<pid>)"],
          ["OPENAI_API_KEY", "the model endpoint's key, from the job's model.apiKeySecretRef"],
          ["HF_ENDPOINT", "Hugging Face Hub endpoint for a model.tokenizer.huggingFace (default https://huggingface.co)"],
          ["HF_TOKEN", "Hub token for a gated or private model.tokenizer.huggingFace, from its tokenSecretRef"],
        ],
        { intro: "Environment (the controller sets it on runner pods):" },
      ),
    )
    .action(async () => {
      const log = logger("runner");
      const stop = new AbortController();
      // SIGTERM (pod deletion, suspend): hand current items back and exit 0 within the short grace period.
      process.once("SIGTERM", () => stop.abort(new Error("SIGTERM")));
      process.once("SIGINT", () => stop.abort(new Error("SIGINT")));
      const summary = await runRunner({
        apiURL: required("HERMES_API_URL"),
        namespace: required("HERMES_JOB_NAMESPACE"),
        job: required("HERMES_JOB_NAME"),
        token: required("HERMES_JOB_TOKEN"),
        runnerId: process.env.HERMES_RUNNER_ID ?? `runner-${process.pid}`,
        ...(process.env.OPENAI_API_KEY ? { modelApiKey: process.env.OPENAI_API_KEY } : {}),
        hub: {
          ...(process.env.HF_ENDPOINT ? { endpoint: process.env.HF_ENDPOINT } : {}),
          ...(process.env.HF_TOKEN ? { token: process.env.HF_TOKEN } : {}),
        },
        signal: stop.signal,
      });
      log.info(summary, "runner finished");
      process.exit(0);
    });
}
