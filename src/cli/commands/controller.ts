import { Command, Option } from "commander";
import { labelSet, portNumber } from "../options.ts";
import { startController } from "../../operator/main.ts";
import { logger } from "../../base/log.ts";
import { backendEnvironment, datasetSettings } from "../environment.ts";
import { BACKEND_VARIABLES, DATASET_VARIABLES, environmentHelp } from "../help.ts";

/** `hermes-rollouts controller`: the operator. Options are read once here into a typed object. */
export function command(): Command {
  return new Command("controller")
    .option("--port <port>", "HTTP port for /healthz, /readyz, /metrics and the runners' API", portNumber, 8080)
    .option(
      "--data-dir <dir>",
      "where results, job state and lease records live (mount a volume)",
      process.env.HERMES_DATA_DIR ?? "/var/lib/hermes-rollouts",
    )
    .option(
      "--runner-api-url <url>",
      "address runner pods use to reach this controller (default http://$POD_IP:<port>)",
      process.env.HERMES_RUNNER_API_URL,
    )
    .option(
      "--image <image>",
      "runner image when a job names none, and the server image of docker Nomad and kubernetes pools (the controller's own image)",
      process.env.HERMES_IMAGE ?? "localhost/hermes-rollouts:dev",
    )
    .addOption(
      new Option("--image-pull-policy <policy>", "runner pods' imagePullPolicy")
        .choices(["Always", "IfNotPresent", "Never"])
        .default(process.env.HERMES_IMAGE_PULL_POLICY ?? "IfNotPresent"),
    )
    .option("--lease-namespace <ns>", "namespace of the leader-election Lease", process.env.POD_NAMESPACE ?? "default")
    .option("--identity <id>", "leader-election identity (default $POD_NAME, else host-pid)", process.env.POD_NAME)
    .option(
      "--namespace <ns>",
      "watch and manage only this namespace (namespaced RBAC); all namespaces when unset",
      process.env.HERMES_WATCH_NAMESPACE,
    )
    .option(
      "--sandbox-network-policy-from <labels>",
      "give each kubernetes pool a NetworkPolicy that admits only pods with these labels (k=v,...) in --lease-namespace: this controller's",
      labelSet,
    )
    .addHelpText(
      "after",
      environmentHelp(
        [
          ["POD_NAME", "leader-election identity when --identity is not given"],
          ["POD_NAMESPACE", "namespace of the leader-election Lease when --lease-namespace is not given"],
          [
            "POD_IP",
            "this replica's address: runner pods reach http://$POD_IP:<port> unless --runner-api-url is given, the\n" +
              "leader publishes it on its Lease so followers send runners to it, and sandboxes clone bundled repos from it",
          ],
          [
            "HERMES_DATA_DIR, HERMES_RUNNER_API_URL, HERMES_IMAGE, HERMES_IMAGE_PULL_POLICY, HERMES_WATCH_NAMESPACE",
            "defaults of the matching options",
          ],
          ...DATASET_VARIABLES,
          ...BACKEND_VARIABLES,
        ],
        { intro: "Environment (the chart's Deployment sets the POD_* ones through the downward API):" },
      ) +
        `

Replicas: only the Lease holder reconciles and serves the runners' API; a follower answers 503 with the leader's
address and runners retry there. Job state lives in --data-dir: give every replica the same volume, or run one replica.`,
    )
    .action(
      async (opts: {
        port: number;
        dataDir: string;
        runnerApiUrl?: string;
        image: string;
        imagePullPolicy: "Always" | "IfNotPresent" | "Never";
        leaseNamespace: string;
        identity?: string;
        namespace?: string;
        sandboxNetworkPolicyFrom?: Record<string, string>;
      }) => {
        const log = logger("cli");
        const running = await startController({
          port: opts.port,
          dataDir: opts.dataDir,
          ...(opts.runnerApiUrl ? { runnerApiURL: opts.runnerApiUrl } : {}),
          image: opts.image,
          imagePullPolicy: opts.imagePullPolicy,
          leaseNamespace: opts.leaseNamespace,
          ...(opts.identity ? { identity: opts.identity } : {}),
          ...(opts.namespace ? { namespace: opts.namespace } : {}),
          ...(opts.sandboxNetworkPolicyFrom ? { sandboxNetworkPolicyFrom: opts.sandboxNetworkPolicyFrom } : {}),
          ...(process.env.POD_IP ? { podIP: process.env.POD_IP } : {}),
          datasets: datasetSettings(process.env),
          // Docker Nomad and kubernetes pools inject the sandbox server from this same image unless they name one.
          backendEnvironment: { ...backendEnvironment(process.env), serverImage: opts.image },
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
      },
    );
}
