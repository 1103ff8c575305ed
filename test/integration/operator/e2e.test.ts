import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ChildProcess } from "node:child_process";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { kubectl } from "../../support/cluster.ts";
import {
  apply,
  exists,
  getJson,
  imageAvailable,
  installOperatorPrereqs,
  NODE_IP,
  startControllerProcess,
  startRunnerProcess,
  waitFor,
  type ControllerProcess,
} from "./harness.ts";

const namespace = `ctrl-${process.pid}`;
const IMAGE = "localhost/hermes-rollouts:dev";
const podsCanRun = imageAvailable(IMAGE);
const items = [0, 1, 2].map((i) => ({
  id: `t${i}`,
  goal: `write ${i} into answer.txt`,
  check: `test "$(cat answer.txt)" = ${i}`,
  solution: `echo ${i} > answer.txt`,
}));
const jobSpec = (extra: object = {}) => ({
  poolRef: { name: "pool" },
  environment: { name: "shell-task" },
  dataset: { inline: items },
  model: { builtin: { policy: "oracle" } },
  groupSize: 2,
  runners: { replicas: 1, trajectoriesPerRunner: 2, image: IMAGE },
  ...extra,
});

let controller: ControllerProcess;
const runners: ChildProcess[] = [];

/** Runner pods when the project image is on the node; otherwise local runner processes through the same entrypoint. */
function startLocalRunnersIfNoImage(job: string): void {
  if (podsCanRun) return;
  const token = Buffer.from(
    kubectl(["get", "secret", `${job}-runner-token`, "-n", namespace, "-o", "jsonpath={.data.token}"]),
    "base64",
  ).toString();
  runners.push(
    startRunnerProcess({
      HERMES_API_URL: `http://${NODE_IP}:${controller.port}`,
      HERMES_JOB_NAMESPACE: namespace,
      HERMES_JOB_NAME: job,
      HERMES_JOB_TOKEN: token,
      HERMES_RUNNER_ID: `${job}-local`,
    }),
  );
}

const runnersAs = podsCanRun ? "pods on the real node" : "local processes: image not imported";
describe(`operator end to end on the real apiserver (runners as ${runnersAs})`, () => {
  before(async () => {
    await installOperatorPrereqs();
    kubectl(["create", "namespace", namespace]);
    controller = await startControllerProcess({ namespace, identity: "e2e" });
  });
  after(async () => {
    for (const r of runners) r.kill("SIGKILL");
    kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=true", "--timeout=60s"]);
    await controller.kill();
    kubectl(["delete", "namespace", namespace, "--wait=false"]);
  });

  test("a local SandboxPool becomes Ready with the right counts", async () => {
    apply("SandboxPool", namespace, "pool", { backend: "local", minSandboxes: 2, maxSandboxes: 2, slotsPerSandbox: 3 });
    kubectl(["wait", "--for=condition=Ready", "sandboxpool/pool", "-n", namespace, "--timeout=60s"]);
    const pool = getJson("sandboxpool", "pool", namespace);
    assert.deepEqual(pool.status.sandboxes, { ready: 2, starting: 0, failed: 0, images: 1 });
    assert.deepEqual(pool.status.slots, { total: 6, leased: 0, free: 6, quarantined: 0 });
    assert.deepEqual(pool.metadata.finalizers, ["hermes-rollouts.dev/sandboxes"]);
    assert.equal(pool.status.observedGeneration, pool.metadata.generation);
    const events = kubectl([
      "get",
      "events",
      "-n",
      namespace,
      "--field-selector",
      "involvedObject.name=pool",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    assert.match(events, /SandboxCreated/);
  });

  test("an invalid RolloutJob gets Failed=True reason InvalidSpec naming the field", async () => {
    // Two dataset sources: only a CEL rule forbids it, and 1.20 ignores CEL, so the controller must catch it.
    apply("RolloutJob", namespace, "invalid", jobSpec({ dataset: { inline: items, bundled: "swe-smith-mini" } }));
    kubectl(["wait", "--for=condition=Failed", "rolloutjob/invalid", "-n", namespace, "--timeout=30s"]);
    const failed = getJson("rolloutjob", "invalid", namespace).status.conditions.find((c: { type: string }) => c.type === "Failed");
    assert.equal(failed.reason, "InvalidSpec");
    assert.match(failed.message, /spec\.dataset/);
  });

  test("a RolloutJob on the built-in oracle completes with passRate 1 and its groups in the sink", async () => {
    apply("RolloutJob", namespace, "oracle", jobSpec());
    await waitFor(() => exists("secret", "oracle-runner-token", namespace), 30_000, "runner token");
    startLocalRunnersIfNoImage("oracle");
    kubectl(["wait", "--for=condition=Complete", "rolloutjob/oracle", "-n", namespace, "--timeout=180s"]);
    const { status } = getJson("rolloutjob", "oracle", namespace);
    assert.equal(status.phase, "Complete");
    assert.equal(status.passRate, 1);
    assert.equal(status.scoreMean, 1);
    assert.deepEqual(status.progress, { items: 3, groups: 3, scored: 6, failed: 0, retried: 0, running: 0, heldBack: 0, filtered: 0 });
    assert.equal(status.completedIndexes, "0-2");
    assert.equal(status.progressSummary, "3/3");
    const lines = readFileSync(status.resultsLocation, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.index).sort(), [0, 1, 2], "each item stored exactly once");
    assert.ok(lines.every((l) => l.group.scores.length === 2 && l.group.messages.length === 2));
    const table = kubectl(["get", "rolloutjobs", "-n", namespace]);
    assert.match(table, /^oracle\s+pool\s+Complete\s+3\/3\s+1\s/m);
    // A release is answered before its slot's reset ends, so the pool's status may count the last slots a moment longer.
    await waitFor(() => getJson("sandboxpool", "pool", namespace).status.slots.leased === 0, 15_000, "every slot came back");
  });

  test("deleting the pool terminates every sandbox before the finalizer goes", async () => {
    const backend = await LocalBackend.open({ rootDir: join(controller.dataDir, "sandboxes") });
    assert.equal((await backend.list(`${namespace}/pool`)).filter((s) => s.phase !== "terminated").length, 2);
    kubectl(["delete", "sandboxpool", "pool", "-n", namespace, "--timeout=60s"]);
    assert.equal(exists("sandboxpool", "pool", namespace), false);
    assert.equal((await backend.list(`${namespace}/pool`)).filter((s) => s.phase !== "terminated").length, 0);
    await backend.close();
  });
});
