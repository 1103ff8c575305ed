// The local cluster's real node: pods run from the project's offline-built image, `kubectl logs` and
// `kubectl exec` reach the kubelet, and kube-proxy routes a Service's ClusterIP to a pod (from another pod, and
// from the host). Needs `cluster.sh up` and `scripts/image/build.sh` (localhost/hermes-rollouts:dev).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { clusterEnv, kubectl } from "../../support/cluster.ts";

const image = process.env.HERMES_IMAGE ?? "localhost/hermes-rollouts:dev";
const namespace = `node-test-${randomBytes(3).toString("hex")}`;
const packageVersion = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;

interface ContainerSpec {
  command?: string[];
  args?: string[];
  ports?: { containerPort: number }[];
  readinessProbe?: unknown;
}

function pod(name: string, container: ContainerSpec, restartPolicy: "Never" | "Always" = "Always"): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      restartPolicy,
      terminationGracePeriodSeconds: 1,
      automountServiceAccountToken: false,
      containers: [{ name: "main", image, imagePullPolicy: "Never", ...container }],
    },
  });
}

function waitForPhase(name: string, phase: string): void {
  kubectl(["wait", `--for=jsonpath={.status.phase}=${phase}`, `pod/${name}`, "-n", namespace, "--timeout=60s"]);
}

before(() => {
  clusterEnv();
  kubectl(["create", "namespace", namespace]);
  // Pods mount no token, but the ServiceAccount admission still wants the namespace's default account.
  kubectl(["wait", "--for=jsonpath={.secrets[0].name}", "serviceaccount/default", "-n", namespace, "--timeout=30s"], { timeoutMs: 40_000 });
});

after(() => {
  kubectl(["delete", "pods,services", "--all", "-n", namespace, "--force", "--grace-period=0", "--wait=false"]);
  kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

test("the project's image runs the CLI as a pod and `kubectl logs` shows its output", () => {
  kubectl(["apply", "-f", "-"], pod("cli", { args: ["--version"] }, "Never"));
  waitForPhase("cli", "Succeeded");
  assert.equal(kubectl(["logs", "cli", "-n", namespace]).trim(), packageVersion);
});

test("a Service routes to a pod of the image, from another pod and from the host; `kubectl exec` works", async () => {
  kubectl(
    ["apply", "-f", "-"],
    pod("web", {
      command: ["python3", "-m", "http.server", "8080", "--directory", "/app"],
      ports: [{ containerPort: 8080 }],
      readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
    }),
  );
  kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace },
      spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
    }),
  );
  // Created after the Service, so Kubernetes injects WEB_SERVICE_HOST/PORT (there is no cluster DNS).
  kubectl(["apply", "-f", "-"], pod("client", { command: ["sleep", "600"] }));
  kubectl(["wait", "--for=condition=Ready", "pod/web", "pod/client", "-n", namespace, "--timeout=60s"]);

  assert.equal(kubectl(["exec", "web", "-n", namespace, "--", "id", "-u"]).trim(), "10001", "the image runs as its non-root user");

  const clusterIP = kubectl(["get", "service", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"]).trim();
  // kube-proxy programs the Service's rules a moment after its endpoints appear, and a server still starting may
  // answer with an empty body: retry until the answer parses, as any client would.
  const fetchFromEnv =
    "const url = `http://${process.env.WEB_SERVICE_HOST}:${process.env.WEB_SERVICE_PORT}/package.json`;" +
    "const until = Date.now() + 20000;" +
    "const get = () => fetch(url).then((r) => r.json()).catch((e) => {" +
    "  if (Date.now() > until) throw e; return new Promise((r) => setTimeout(r, 250)).then(get);" +
    "});" +
    "get().then((p) => console.log(p.version))";
  const fromPod = kubectl(["exec", "client", "-n", namespace, "--", "node", "-e", fetchFromEnv], { timeoutMs: 40_000 });
  assert.equal(fromPod.trim(), packageVersion, "pod -> Service ClusterIP (from the injected env) -> pod");

  const response = await fetch(`http://${clusterIP}/package.json`, { signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as { version: string };
  assert.equal(body.version, packageVersion, "host -> Service ClusterIP -> pod");
});
