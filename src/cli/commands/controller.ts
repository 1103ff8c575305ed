import { Command, Option } from "commander";
import { startController } from "../../controller/main.ts";
import { logger } from "../../log.ts";

/** `hermes-rollouts controller`: the operator. Options are read once here into a typed object. */
export function command(): Command {
  return new Command("controller")
    .option("--port <port>", "HTTP port for /healthz, /readyz, /metrics and the runners' API", (v) => Number(v), 8080)
    .option("--data-dir <dir>", "where results, job state and lease records live (mount a volume)", process.env.HERMES_DATA_DIR ?? "/var/lib/hermes-rollouts")
    .option("--runner-api-url <url>", "address runner pods use to reach this controller (default http://$POD_IP:<port>)", process.env.HERMES_RUNNER_API_URL)
    .option("--image <image>", "runner image when a job names none (the controller's own image)", process.env.HERMES_IMAGE ?? "localhost/hermes-rollouts:dev")
    .addOption(new Option("--image-pull-policy <policy>", "runner pods' imagePullPolicy").choices(["Always", "IfNotPresent", "Never"]).default(process.env.HERMES_IMAGE_PULL_POLICY ?? "IfNotPresent"))
    .option("--lease-namespace <ns>", "namespace of the leader-election Lease", process.env.POD_NAMESPACE ?? "default")
    .option("--identity <id>", "leader-election identity (default host-pid)", process.env.POD_NAME)
    .action(async (opts: { port: number; dataDir: string; runnerApiUrl?: string; image: string; imagePullPolicy: "Always" | "IfNotPresent" | "Never"; leaseNamespace: string; identity?: string }) => {
      const log = logger("cli");
      const running = await startController({
        port: opts.port,
        dataDir: opts.dataDir,
        ...(opts.runnerApiUrl ? { runnerApiURL: opts.runnerApiUrl } : {}),
        image: opts.image,
        imagePullPolicy: opts.imagePullPolicy,
        leaseNamespace: opts.leaseNamespace,
        ...(opts.identity ? { identity: opts.identity } : {}),
      });
      const shutdown = (signal: string) => {
        log.info({ signal }, "shutting down");
        running.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            log.error({ err: error }, "unclean shutdown");
            process.exit(1);
          },
        );
      };
      process.once("SIGTERM", () => shutdown("SIGTERM"));
      process.once("SIGINT", () => shutdown("SIGINT"));
    });
}
