import { randomBytes } from "node:crypto";
import { KubeConfig } from "@kubernetes/client-node";
import { kubernetesBlock, type KubernetesPoolSettings } from "../../../src/api/index.ts";
import { KubernetesBackend } from "../../../src/backends/kubernetes/backend.ts";
import { kubeClient } from "../../../src/operator/client.ts";
import { sandboxPodApi, sandboxTokenSecret, sandboxTokenSecretName, SANDBOX_TOKEN_KEY } from "../../../src/operator/backends.ts";
import { clusterEnv, kubectl } from "../../support/cluster.ts";

/** The project's image, imported into the node's containerd by scripts/image/build.sh: never pulled. */
export const HERMES_IMAGE = "localhost/hermes-rollouts:dev";
/** How the project's image starts its CLI, for pools that run it directly (no initContainer). */
export const SERVER_COMMAND = ["node", "/app/bin/hermes-rollouts.js"];
/** A sandbox image without node or this CLI (build.sh's build_image_without_node): the server can only be injected. */
export const IMAGE_WITHOUT_NODE = "localhost/debian:bookworm-no-node";

/**
 * A kubernetes backend on the local cluster's real node, in a namespace of its own (with the pool's token Secret, as
 * the operator makes it), built with the operator's own pod API. `cleanup` deletes the namespace.
 */
export async function clusterBackend(prefix: string, settings: Partial<KubernetesPoolSettings> = {}) {
  const env = clusterEnv();
  const namespace = `${prefix}-${randomBytes(3).toString("hex")}`;
  kubectl(["create", "namespace", namespace]);
  const kc = new KubeConfig();
  kc.loadFromFile(env.kubeconfig);
  const client = kubeClient(kc);
  const pool = { key: `${namespace}/pool`, namespace, name: "pool", uid: "" };
  const token = randomBytes(24).toString("base64url");
  const secret = sandboxTokenSecret(pool, token);
  delete secret.metadata!.ownerReferences; // no SandboxPool owns it here: the namespace's deletion takes it
  await client.createSecret(namespace, secret);
  const pods = sandboxPodApi(client, namespace);
  const backend = new KubernetesBackend({
    pods,
    sandboxToken: token,
    readyTimeoutMs: 120_000,
    pod: {
      namespace,
      settings: kubernetesBlock.parse({ imagePullPolicy: "Never", ...settings }),
      // As the controller defaults it: its own image brings the server into pods of images without it.
      serverImage: HERMES_IMAGE,
      // This node's runc masks /proc, so bwrap cannot run in its pods (docs/operations.md): the pool says none.
      isolation: { mode: "none", network: "none" },
      tokenSecret: { name: sandboxTokenSecretName(pool.name), key: SANDBOX_TOKEN_KEY },
    },
  });
  // The pods go at once (force: their requests leave the scheduler's books now, not after their grace period), as the
  // next test file's pods need the CPU they held on this small node; the namespace follows in the background.
  const cleanup = async () => {
    kubectl(["delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false"]);
    kubectl(["delete", "namespace", namespace, "--wait=false"]);
  };
  return { backend, namespace, pods, client, cleanup };
}
