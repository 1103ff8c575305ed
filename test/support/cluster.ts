import { spawnSync } from "node:child_process";

/**
 * The local cluster as tests see it: `scripts/cluster/cluster.sh up` starts it and `cluster.sh env` exports
 * these variables (scripts/test.sh does both before the integration suite).
 */
export interface ClusterEnv {
  kubeconfig: string;
  operatorKubeconfig: string;
  kubectl: string;
  helm: string;
  nodeName: string;
}

export function clusterEnv(): ClusterEnv {
  const { KUBECONFIG, HERMES_OPERATOR_KUBECONFIG, HERMES_KUBECTL, HERMES_HELM, HERMES_NODE_NAME } = process.env;
  if (!KUBECONFIG || !HERMES_OPERATOR_KUBECONFIG) {
    throw new Error('no local cluster: run `npm run cluster:up` and `eval "$(bash scripts/cluster/cluster.sh env)"` first');
  }
  return {
    kubeconfig: KUBECONFIG,
    operatorKubeconfig: HERMES_OPERATOR_KUBECONFIG,
    kubectl: HERMES_KUBECTL ?? "kubectl",
    helm: HERMES_HELM ?? "helm",
    nodeName: HERMES_NODE_NAME ?? "hermes-node",
  };
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the real kubectl; never throws on a non-zero exit. */
export function kubectlResult(args: readonly string[], input?: string): CommandResult {
  const env = clusterEnv();
  const result = spawnSync(env.kubectl, args, { input, encoding: "utf8", env: { ...process.env, KUBECONFIG: env.kubeconfig }, timeout: 120_000 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the real kubectl and returns its stdout; throws with stderr when it fails. */
export function kubectl(args: readonly string[], input?: string): string {
  const result = kubectlResult(args, input);
  if (result.status !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}
