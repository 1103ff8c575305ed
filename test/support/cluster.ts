import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * The local cluster as tests see it: `scripts/cluster/cluster.sh up` starts it and `cluster.sh env` exports
 * these variables (scripts/test.sh does both before the integration suite).
 */
export interface ClusterEnv {
  /** Admin kubeconfig (system:masters). */
  kubeconfig: string;
  /** Kubeconfig of the user `operator`, which has no groups: RBAC decides what it may do. */
  operatorKubeconfig: string;
  kubectl: string;
  helm: string;
  nodeName: string;
  /** The node's containerd socket; imported images live in its `k8s.io` namespace. */
  containerdSock: string;
}

const howToStart = 'run `npm run cluster:up` and `eval "$(bash scripts/cluster/cluster.sh env)"` first';

export function clusterEnv(): ClusterEnv {
  const {
    KUBECONFIG,
    HERMES_OPERATOR_KUBECONFIG,
    HERMES_KUBECTL,
    HERMES_HELM,
    HERMES_NODE_NAME,
    HERMES_CONTAINERD_SOCK,
    HERMES_CLUSTER_STATE,
  } = process.env;
  if (!KUBECONFIG || !HERMES_OPERATOR_KUBECONFIG || !HERMES_CLUSTER_STATE) {
    throw new Error(`no local cluster (KUBECONFIG, HERMES_OPERATOR_KUBECONFIG or HERMES_CLUSTER_STATE unset): ${howToStart}`);
  }
  // cluster.sh writes this marker when everything is ready and removes it first thing on `down`.
  if (!existsSync(join(HERMES_CLUSTER_STATE, "up"))) {
    throw new Error(`the local cluster is not up (no ${join(HERMES_CLUSTER_STATE, "up")}): ${howToStart}`);
  }
  return {
    kubeconfig: KUBECONFIG,
    operatorKubeconfig: HERMES_OPERATOR_KUBECONFIG,
    kubectl: HERMES_KUBECTL ?? "kubectl",
    helm: HERMES_HELM ?? "helm",
    nodeName: HERMES_NODE_NAME ?? "hermes-node",
    containerdSock: HERMES_CONTAINERD_SOCK ?? join(HERMES_CLUSTER_STATE, "containerd", "containerd.sock"),
  };
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `apply -f -`). */
  input?: string;
  /** Defaults to the admin kubeconfig; pass `clusterEnv().operatorKubeconfig` to act as the restricted user. */
  kubeconfig?: string;
  timeoutMs?: number;
}

/** Runs the real kubectl; never throws on a non-zero exit. A string second argument is stdin. */
export function kubectlResult(args: readonly string[], options: string | KubectlOptions = {}): CommandResult {
  const env = clusterEnv();
  const { input, kubeconfig, timeoutMs } = typeof options === "string" ? ({ input: options } as KubectlOptions) : options;
  const result = spawnSync(env.kubectl, args, {
    input,
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: kubeconfig ?? env.kubeconfig },
    timeout: timeoutMs ?? 120_000,
  });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Waits until both CRDs are Established. Not `kubectl wait`: kubectl 1.20 fails at once ("accessor error: <nil>")
 * when a CRD that was just created has no status conditions yet, instead of waiting for them.
 */
export async function waitForCrdsEstablished(timeoutMs = 60_000): Promise<void> {
  const crds = ["crd/sandboxpools.hermes-rollouts.dev", "crd/rolloutjobs.hermes-rollouts.dev"];
  const established = '{range .items[*]}{.status.conditions[?(@.type=="Established")].status}{" "}{end}';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = kubectlResult(["get", ...crds, "-o", `jsonpath=${established}`]);
    if (result.status === 0 && result.stdout.trim() === "True True") return;
    if (Date.now() > deadline) throw new Error(`CRDs not Established within ${timeoutMs} ms: ${result.stdout}${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Runs the real kubectl and returns its stdout; throws with stderr when it fails. A string second argument is stdin. */
export function kubectl(args: readonly string[], options: string | KubectlOptions = {}): string {
  const result = kubectlResult(args, options);
  if (result.status !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}
