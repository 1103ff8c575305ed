import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { kubectl } from "../../support/cluster.ts";
import { IMAGE_WITHOUT_NODE } from "../kubernetes/support.ts";
import { assertEveryItemOnce, slowItems } from "./checks.ts";
import { apply, getJson, installOperatorPrereqs, NODE_IP, startControllerProcess, waitFor, type ControllerProcess } from "./harness.ts";

/**
 * SandboxPools on backend kubernetes against the real apiserver and kubelet: sandboxes are pods of an image without
 * node or this CLI, their server copied in by an initContainer of the project's image (the controller's --image);
 * runner pods run the project's image (both imported into the node's containerd). The controller runs as a local
 * process with the restricted operator user, and reaches sandbox pods by their IPs on the node's CNI bridge.
 */
const namespace = `k8spool-${process.pid}`;
const IMAGE = "localhost/hermes-rollouts:dev";
const POOL_LABEL = "hermes-rollouts.dev/pool";
let controller: ControllerProcess;
/** As the chart runs it: each pool's NetworkPolicy admits only pods with these labels in the controller's namespace. */
const controllerArgs = ["--sandbox-network-policy-from", "app.kubernetes.io/component=controller"];

before(async () => {
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
  // Sandboxes clone the bundled repositories from the controller's git server at POD_IP: here the node's address.
  process.env.POD_IP = NODE_IP;
  controller = await startControllerProcess({ namespace, identity: "k8spool", args: controllerArgs });
});
after(async () => {
  kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=true", "--timeout=90s"]);
  await controller.kill();
  kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

function pool(name: string, spec: object): void {
  apply("SandboxPool", namespace, name, {
    backend: "kubernetes",
    image: IMAGE_WITHOUT_NODE,
    // Half a CPU: the inject initContainer requests the sandbox's CPU, and writing its 13,000 files is several
    // CPU-seconds (well over a minute at 0.1 CPU on this loaded two-core node).
    resources: { cpu: "500m", memory: "512Mi" },
    kubernetes: { imagePullPolicy: "Never" },
    // This node's runc masks /proc in pods, so bubblewrap cannot mount one: the pool says none.
    isolation: { mode: "none" },
    leaseTTLSeconds: 10,
    ...spec,
  });
}

const podsOf = (name: string): string[] =>
  kubectl(["get", "pods", "-n", namespace, "-l", `${POOL_LABEL}=${name}`, "-o", "jsonpath={.items[*].metadata.name}"])
    .split(" ")
    .filter(Boolean);
const readyCondition = (name: string) =>
  getJson("sandboxpool", name, namespace).status?.conditions?.find((c: { type: string }) => c.type === "Ready");

function job(name: string, poolName: string, spec: object): void {
  apply("RolloutJob", namespace, name, {
    poolRef: { name: poolName },
    model: { builtin: { policy: "oracle" } },
    groupSize: 1,
    runners: { replicas: 1, trajectoriesPerRunner: 2, image: IMAGE },
    backoffLimit: 3,
    ...spec,
  });
}

test("a pool naming an image that does not exist is not Ready within 30 s, reason ImagePullFailed", async () => {
  const started = Date.now();
  pool("missing", { image: "localhost/hermes-no-such-image:v0", kubernetes: {}, minSandboxes: 1, maxSandboxes: 1 });
  await waitFor(() => readyCondition("missing")?.reason === "ImagePullFailed", 30_000, "Ready reason ImagePullFailed");
  const ready = readyCondition("missing");
  assert.equal(ready.status, "False");
  assert.match(ready.message, /ErrImagePull|ImagePullBackOff/);
  process.stderr.write(`ImagePullFailed after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  kubectl(["delete", "sandboxpool", "missing", "-n", namespace, "--timeout=60s"]);
});

test("a pool whose pods no node can take is not Ready, reason Unschedulable with the scheduler's words", async () => {
  pool("huge", { resources: { cpu: "64", memory: "512Mi" }, minSandboxes: 1, maxSandboxes: 1 });
  await waitFor(() => readyCondition("huge")?.reason === "Unschedulable", 30_000, "Ready reason Unschedulable");
  assert.match(readyCondition("huge").message, /Insufficient cpu/);
  kubectl(["delete", "sandboxpool", "huge", "-n", namespace, "--timeout=60s"]);
});

test("a RolloutJob on a kubernetes pool completes: every bundled swe-smith-mini item scored 1.0 by the oracle", async () => {
  pool("swe", { minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 2 });
  kubectl(["wait", "--for=condition=Ready", "sandboxpool/swe", "-n", namespace, "--timeout=120s"]);
  const { status } = getJson("sandboxpool", "swe", namespace);
  assert.deepEqual(status.sandboxes, { ready: 1, starting: 0, failed: 0, images: 1 });
  assert.equal(podsOf("swe").length, 1, "one sandbox pod");
  // The bridge CNI of the test cluster does not enforce NetworkPolicy: what is checked here is the object.
  const policy = getJson("networkpolicy", "swe-sandboxes", namespace);
  assert.deepEqual(policy.spec.podSelector.matchLabels, { [POOL_LABEL]: "swe", "app.kubernetes.io/component": "sandbox" });
  assert.deepEqual(policy.spec.ingress, [
    {
      from: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
          podSelector: { matchLabels: { "app.kubernetes.io/component": "controller" } },
        },
      ],
      ports: [{ protocol: "TCP", port: 8080 }],
    },
  ]);
  assert.equal(policy.metadata.ownerReferences[0].name, "swe", "owned by the pool: it goes with it");
  // Isolation off, as the pool asked: the condition says so rather than reporting a failure.
  const isolated = status.conditions.find((c: { type: string }) => c.type === "Isolated");
  assert.deepEqual([isolated.status, isolated.reason], ["False", "DisabledBySpec"]);
  job("swe", "swe", {
    environment: { name: "swe-smith-oracle" },
    dataset: { bundled: "swe-smith-mini" },
    limits: { maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120 },
  });
  kubectl(["wait", "--for=condition=Complete", "rolloutjob/swe", "-n", namespace, "--timeout=300s"]);
  const done = getJson("rolloutjob", "swe", namespace).status;
  assert.equal(done.progress.failed, 0);
  assert.ok(done.progress.items > 0 && done.progress.groups === done.progress.items, `every item scored: ${JSON.stringify(done.progress)}`);
  assert.equal(done.scoreMean, 1, "every item scored 1.0");
  assert.equal(done.passRate, 1);
});

test("a restarted controller adopts the pool's pods by their labels: no new pod, the pool Ready again", async () => {
  pool("adopted", { minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 2 });
  kubectl(["wait", "--for=condition=Ready", "sandboxpool/adopted", "-n", namespace, "--timeout=120s"]);
  const pods = podsOf("adopted");
  assert.equal(pods.length, 1);
  await controller.kill();
  controller = await startControllerProcess({ namespace, identity: "k8spool-2", dataDir: controller.dataDir, args: controllerArgs });
  await waitFor(
    () => (getJson("sandboxpool", "adopted", namespace).status?.slots?.free ?? 0) === 2,
    60_000,
    "the adopted pod's slots free",
  );
  assert.equal(readyCondition("adopted").status, "True");
  assert.deepEqual(podsOf("adopted"), pods, "the same pod, none created");
  kubectl(["delete", "sandboxpool", "adopted", "-n", namespace, "--timeout=90s"]);
});

test("pods whose pool is gone without the controller (finalizer removed by hand) are swept by the garbage collector", async () => {
  pool("orphan", { minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 1 });
  kubectl(["wait", "--for=condition=Ready", "sandboxpool/orphan", "-n", namespace, "--timeout=120s"]);
  assert.equal(podsOf("orphan").length, 1);
  await controller.kill();
  try {
    kubectl(["patch", "sandboxpool", "orphan", "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
    kubectl(["delete", "sandboxpool", "orphan", "-n", namespace, "--timeout=30s"]);
    // The pods' ownerReference names the pool: the controller-manager's garbage collector deletes them.
    await waitFor(() => podsOf("orphan").length === 0, 60_000, "the orphaned pod collected");
  } finally {
    controller = await startControllerProcess({ namespace, identity: "k8spool-3", dataDir: controller.dataDir, args: controllerArgs });
  }
});

test("a sandbox pod deleted mid-trajectory: retried on another slot, never scored 0; no pod left after the pool is deleted", async () => {
  pool("victim", { minSandboxes: 2, maxSandboxes: 2, slotsPerSandbox: 1 });
  kubectl(["wait", "--for=condition=Ready", "sandboxpool/victim", "-n", namespace, "--timeout=120s"]);
  job("killed", "victim", {
    environment: { name: "shell-task" },
    // Long enough that the pool's status (written at least every 5 s) shows the leases well before the trajectories end.
    dataset: { inline: slowItems(2, 20) },
    limits: { trajectoryTimeoutSeconds: 60, toolTimeoutSeconds: 30 },
  });
  await waitFor(() => (getJson("sandboxpool", "victim", namespace).status?.slots?.leased ?? 0) >= 1, 120_000, "a leased slot");
  await new Promise((r) => setTimeout(r, 2000)); // inside the solution's sleep
  const podsBefore = podsOf("victim");
  kubectl(["delete", "pod", podsBefore[0]!, "-n", namespace, "--wait=false"]);
  kubectl(["wait", "--for=condition=Complete", "rolloutjob/killed", "-n", namespace, "--timeout=240s"]);
  const status = assertEveryItemOnce(namespace, "killed", 2);
  // The group retried the trajectory on a fresh slot itself (an infrastructure failure): the item never failed.
  const groups = readFileSync(status.resultsLocation, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line).group.metadata as { retries: number; trajectories: { sandbox: string; attempt: number }[] });
  const retried = groups.filter((group) => group.retries >= 1);
  assert.equal(retried.length, 1, `one trajectory was interrupted and retried: ${JSON.stringify(groups)}`);
  assert.notEqual(retried[0]!.trajectories[0]!.sandbox, podsBefore[0], "the retry ran on another sandbox's slot");
  assert.equal(status.passRate, 1, "the interrupted trajectory was retried, not scored as a failure");
  assert.equal(status.scoreMean, 1);
  // kubelet 1.20 may keep a deleted pod object for a while after its container stopped.
  await waitFor(() => !podsOf("victim").includes(podsBefore[0]!), 90_000, "the deleted pod gone");
  assert.equal(podsOf("victim").length, 2, "the deleted pod was replaced");

  kubectl(["delete", "sandboxpool", "victim", "-n", namespace, "--timeout=90s"]);
  await waitFor(() => podsOf("victim").length === 0, 90_000, "no pod of the deleted pool");
});
