import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { API_VERSION } from "../../../src/api/index.ts";
import { clusterEnv, kubectl, kubectlResult, waitForCrdsEstablished } from "../../support/cluster.ts";

const repo = new URL("../../../", import.meta.url).pathname;
const REPO_CLI = join(repo, "bin/hermes-rollouts.js");
export const NODE_IP = process.env.HERMES_NODE_IP ?? "192.0.2.2";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** CRDs, the operator's ClusterRole from deploy/rbac, and a binding for the cluster's restricted operator user. */
export async function installOperatorPrereqs(): Promise<void> {
  kubectl(["apply", "--validate=false", "-f", join(repo, "deploy/crds/")]);
  await waitForCrdsEstablished();
  kubectl(["apply", "-f", join(repo, "deploy/rbac/clusterrole.yaml")]);
  kubectl(
    ["apply", "-f", "-"],
    stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "hermes-rollouts-controller-test-user" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "hermes-rollouts-controller" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "operator" }],
    }),
  );
}

export function imageAvailable(image: string): boolean {
  const sock = process.env.HERMES_CONTAINERD_SOCK;
  if (!sock) return false;
  const result = spawnSync("ctr", ["-a", sock, "-n", "k8s.io", "images", "ls", "-q"], { encoding: "utf8" });
  return (
    result.status === 0 &&
    result.stdout
      .split("\n")
      .some((l) => l.trim() === image || l.trim() === `${image.startsWith("localhost/") ? "" : "docker.io/library/"}${image}`)
  );
}

export interface ControllerProcess {
  port: number;
  dataDir: string;
  logPath: string;
  child: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** The controller as a child process with the operator's restricted kubeconfig, as a Deployment would run it. */
export async function startControllerProcess(options: {
  namespace: string;
  dataDir?: string;
  identity: string;
  port?: number;
  /** More controller options, after the harness's own. */
  args?: string[];
  /** The CLI entry to run; the repo's bin/hermes-rollouts.js (the TypeScript sources) unless given. */
  cli?: string;
}): Promise<ControllerProcess> {
  const port = options.port ?? (await freePort());
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "hermes-ctrl-"));
  const logPath = join(dataDir, `controller-${options.identity}.log`);
  const child = spawn(
    process.execPath,
    [
      options.cli ?? REPO_CLI,
      "controller",
      "--port",
      String(port),
      "--data-dir",
      dataDir,
      "--lease-namespace",
      options.namespace,
      "--identity",
      options.identity,
      "--runner-api-url",
      `http://${NODE_IP}:${port}`,
      "--image-pull-policy",
      "Never",
      // Scoped to the test's namespace: controllers of tests running at once never reconcile each other's objects.
      "--namespace",
      options.namespace,
      ...(options.args ?? []),
    ],
    { env: { ...process.env, KUBECONFIG: clusterEnv().operatorKubeconfig, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = createWriteStream(logPath, { flags: "a" });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  await waitFor(
    async () =>
      (await fetch(`http://127.0.0.1:${port}/readyz`)
        .then((r) => r.ok)
        .catch(() => false)) || child.exitCode !== null,
    30_000,
  );
  if (child.exitCode !== null) throw new Error(`controller exited with ${child.exitCode}; see ${logPath}`);
  return {
    port,
    dataDir,
    logPath,
    child,
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill(signal);
      await exited;
    },
  };
}

/** A runner as a local process through the same entrypoint a runner pod uses. */
export function startRunnerProcess(env: Record<string, string>, cli = REPO_CLI): ChildProcess {
  return spawn(process.execPath, [cli, "runner"], {
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdio: "ignore",
  });
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export function apply(kind: "SandboxPool" | "RolloutJob", namespace: string, name: string, spec: object): void {
  kubectl(["apply", "-f", "-"], stringify({ apiVersion: API_VERSION, kind, metadata: { name, namespace }, spec }));
}

export function getJson(resource: string, name: string, namespace: string): any {
  return JSON.parse(kubectl(["get", resource, name, "-n", namespace, "-o", "json"]));
}

export function exists(resource: string, name: string, namespace: string): boolean {
  return kubectlResult(["get", resource, name, "-n", namespace]).status === 0;
}
