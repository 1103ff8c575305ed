import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { kubectl } from "../../support/cluster.ts";
import { assertEveryItemOnce, assertNoLeaks, liveSandboxes, runnerToken, slowItems } from "./checks.ts";
import {
  apply,
  exists,
  getJson,
  installOperatorPrereqs,
  NODE_IP,
  startControllerProcess,
  startRunnerProcess,
  waitFor,
  type ControllerProcess,
} from "./harness.ts";

/** Faults on the local backend against the real apiserver: a runner killed, a sandbox terminated, a pool deleted. */
const namespace = `faults-${process.pid}`;
let controller: ControllerProcess;
let backend: LocalBackend;
const runners: ChildProcess[] = [];

before(async () => {
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
  controller = await startControllerProcess({ namespace, identity: "faults" });
  backend = await LocalBackend.open({ rootDir: join(controller.dataDir, "sandboxes") });
});
after(async () => {
  for (const r of runners) r.kill("SIGKILL");
  kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=true", "--timeout=60s"]);
  await controller.kill();
  await backend.close();
  kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

function runner(job: string, id: string): ChildProcess {
  const child = startRunnerProcess({
    HERMES_API_URL: `http://${NODE_IP}:${controller.port}`,
    HERMES_JOB_NAMESPACE: namespace,
    HERMES_JOB_NAME: job,
    HERMES_JOB_TOKEN: runnerToken(namespace, job),
    HERMES_RUNNER_ID: id,
  });
  runners.push(child);
  return child;
}

function startJob(job: string, pool: string, items: object[], extra: object = {}): void {
  apply("RolloutJob", namespace, job, {
    poolRef: { name: pool },
    environment: { name: "shell-task" },
    dataset: { inline: items },
    model: { builtin: { policy: "oracle" } },
    groupSize: 1,
    runners: { replicas: 1, trajectoriesPerRunner: 2, image: "localhost/hermes-rollouts:dev" },
    // A 5 s trajectory timeout makes the work lease 10 s: a dead runner's item comes back quickly.
    limits: { trajectoryTimeoutSeconds: 5, toolTimeoutSeconds: 5 },
    backoffLimit: 3,
    ...extra,
  });
}

function readyPool(name: string, sandboxes: number, slots: number): void {
  apply("SandboxPool", namespace, name, {
    backend: "local",
    minSandboxes: sandboxes,
    maxSandboxes: sandboxes,
    slotsPerSandbox: slots,
    leaseTTLSeconds: 5,
  });
  kubectl(["wait", "--for=condition=Ready", `sandboxpool/${name}`, "-n", namespace, "--timeout=60s"]);
}

const running = (job: string) => getJson("rolloutjob", job, namespace).status?.progress?.running ?? 0;

test("a runner SIGKILLed mid-trajectory: its items come back after the work lease lapses and each is scored once", async () => {
  readyPool("pool-a", 1, 2);
  startJob("killed", "pool-a", slowItems(4, 2));
  await waitFor(() => exists("secret", "killed-runner-token", namespace), 30_000, "runner token");
  const first = runner("killed", "first");
  await waitFor(() => running("killed") >= 2, 30_000, "two items in flight");
  await new Promise((r) => setTimeout(r, 800)); // inside the solution's sleep
  first.kill("SIGKILL");
  runner("killed", "second");
  kubectl(["wait", "--for=condition=Complete", "rolloutjob/killed", "-n", namespace, "--timeout=90s"]);
  const status = assertEveryItemOnce(namespace, "killed", 4);
  assert.ok(status.progress.retried >= 1, `the killed runner's items were retried (retried=${status.progress.retried})`);
  assert.equal(status.passRate, 1);
  await assertNoLeaks(namespace, "pool-a", backend, 1);
});

test("a sandbox terminated mid-exec: retried on another slot, scored once, and the pool replaces the sandbox", async () => {
  readyPool("pool-c", 2, 1);
  startJob("terminated", "pool-c", slowItems(3, 2));
  await waitFor(() => exists("secret", "terminated-runner-token", namespace), 30_000, "runner token");
  runner("terminated", "c");
  await waitFor(() => running("terminated") >= 1, 30_000, "an item in flight");
  const leasesFile = join(controller.dataDir, "leases", `${namespace}_pool-c.json`);
  let busy: string | undefined;
  await waitFor(
    () => {
      busy = (JSON.parse(readFileSync(leasesFile, "utf8")) as { sandboxName: string }[])[0]?.sandboxName;
      return busy !== undefined;
    },
    10_000,
    "a leased slot",
  );
  await new Promise((r) => setTimeout(r, 800)); // inside the solution's sleep
  const before = await liveSandboxes(backend, namespace, "pool-c");
  const victim = before.find((s) => s.name === busy)!;
  await backend.terminate(victim);
  kubectl(["wait", "--for=condition=Complete", "rolloutjob/terminated", "-n", namespace, "--timeout=90s"]);
  const status = assertEveryItemOnce(namespace, "terminated", 3);
  assert.equal(status.passRate, 1, "the interrupted trajectory was retried, not scored as a failure");
  await assertNoLeaks(namespace, "pool-c", backend, 2);
  const after = await liveSandboxes(backend, namespace, "pool-c");
  assert.ok(!after.some((s) => s.name === victim.name), "the terminated sandbox is gone");
  const events = kubectl([
    "get",
    "events",
    "-n",
    namespace,
    "--field-selector",
    "involvedObject.name=pool-c",
    "-o",
    "jsonpath={.items[*].reason}",
  ]);
  assert.match(events, /SandboxReplaced|SandboxCreated/);
});

test("a pool deleted while its job runs: PoolDeleted, sandboxes terminated, finalizer done; the job finishes on a new pool", async () => {
  readyPool("pool-e", 1, 2);
  startJob("orphaned", "pool-e", slowItems(4, 2));
  await waitFor(() => exists("secret", "orphaned-runner-token", namespace), 30_000, "runner token");
  const first = runner("orphaned", "e1");
  await waitFor(() => running("orphaned") >= 1, 30_000, "an item in flight");
  kubectl(["delete", "sandboxpool", "pool-e", "-n", namespace, "--timeout=60s"]);
  assert.equal(exists("sandboxpool", "pool-e", namespace), false, "the finalizer completed");
  assert.equal((await liveSandboxes(backend, namespace, "pool-e")).length, 0, "no sandbox leaked");
  kubectl(["wait", "--for=condition=Running=False", "rolloutjob/orphaned", "-n", namespace, "--timeout=30s"]);
  const cond = getJson("rolloutjob", "orphaned", namespace).status.conditions.find((c: { type: string }) => c.type === "Running");
  assert.equal(cond.reason, "PoolDeleted");
  await waitFor(() => first.exitCode !== null, 30_000, "the runner stops");
  const paused = getJson("rolloutjob", "orphaned", namespace).status;
  assert.equal(paused.progress.failed, 0, "no item failed because its pool went away");
  assert.equal(paused.progress.running, 0, "in-flight items were handed back");

  readyPool("pool-e", 1, 2);
  runner("orphaned", "e2");
  kubectl(["wait", "--for=condition=Complete", "rolloutjob/orphaned", "-n", namespace, "--timeout=90s"]);
  assertEveryItemOnce(namespace, "orphaned", 4);
  await assertNoLeaks(namespace, "pool-e", backend, 1);
  kubectl(["delete", "rolloutjob", "orphaned", "-n", namespace, "--timeout=30s"]);
  assert.equal(exists("secret", "orphaned-runner-token", namespace), false, "the job finalizer deleted the token Secret");
});
