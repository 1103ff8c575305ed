import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, test } from "node:test";
import { startMockModal, type MockModal } from "../../../src/testbeds/mock-modal/server.ts";
import { kubectl } from "../../support/cluster.ts";
import { assertEveryItemOnce, runnerToken, slowItems } from "./checks.ts";
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

/** A modal pool on the mock Modal (the real SDK in the controller) under UNAVAILABLE bursts and throttling. */
const namespace = `modal-faults-${process.pid}`;
let mock: MockModal;
let controller: ControllerProcess;
let runner: ChildProcess | undefined;

before(async () => {
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
  mock = await startMockModal({ host: "127.0.0.1" });
  kubectl([
    "create",
    "secret",
    "generic",
    "modal-creds",
    "-n",
    namespace,
    "--from-literal=MODAL_TOKEN_ID=ak-test",
    "--from-literal=MODAL_TOKEN_SECRET=as-test",
  ]);
  controller = await startControllerProcess({ namespace, identity: "modal-faults" });
});
after(async () => {
  runner?.kill("SIGKILL");
  kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=false"]);
  await waitFor(() => kubectl(["get", "rolloutjobs,sandboxpools", "-n", namespace, "-o", "name"]).trim() === "", 60_000, "finalizers");
  await controller.kill();
  await mock.close();
  kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

// The mock serves from this process: wait by polling (short kubectl calls), never with a blocking `kubectl wait`.
const hasCondition = (resource: string, name: string, type: string) =>
  waitFor(
    () =>
      (getJson(resource, name, namespace).status?.conditions ?? []).some(
        (c: { type: string; status: string }) => c.type === type && c.status === "True",
      ),
    120_000,
    `${resource}/${name} ${type}`,
  );
const failedCalls = (method: string) => mock.faults.callsTo(method).filter((call) => call.failedWith !== undefined).length;
const liveMockSandboxes = () => [...mock.state.sandboxes.values()].filter((s) => s.running).length;

test("UNAVAILABLE bursts and throttling on create and exec: the job completes with each item once, and nothing leaks", async () => {
  mock.faults.unavailable(3, "SandboxCreateV2");
  mock.faults.throttle(2, 0.3, "SandboxCreateV2");
  apply("SandboxPool", namespace, "pool", {
    backend: "modal",
    minSandboxes: 1,
    maxSandboxes: 1,
    slotsPerSandbox: 2,
    leaseTTLSeconds: 5,
    modal: { appName: `faults-${process.pid}`, serverURL: mock.url, credentialsSecretRef: { name: "modal-creds" } },
  });
  await hasCondition("sandboxpool", "pool", "Ready");
  assert.ok(failedCalls("SandboxCreateV2") >= 5, "the create faults fired and were retried");

  apply("RolloutJob", namespace, "job", {
    poolRef: { name: "pool" },
    environment: { name: "shell-task" },
    dataset: { inline: slowItems(4, 0) },
    model: { builtin: { policy: "oracle" } },
    groupSize: 2,
    runners: { replicas: 1, trajectoriesPerRunner: 2, image: "localhost/hermes-rollouts:dev" },
    limits: { trajectoryTimeoutSeconds: 10, toolTimeoutSeconds: 10 },
  });
  await waitFor(() => exists("secret", "job-runner-token", namespace), 30_000, "runner token");
  const execMethod = "TaskExecStart";
  mock.faults.unavailable(3, execMethod);
  mock.faults.throttle(2, 0.3, execMethod);
  runner = startRunnerProcess({
    HERMES_API_URL: `http://${NODE_IP}:${controller.port}`,
    HERMES_JOB_NAMESPACE: namespace,
    HERMES_JOB_NAME: "job",
    HERMES_JOB_TOKEN: runnerToken(namespace, "job"),
    HERMES_RUNNER_ID: "r",
  });
  await hasCondition("rolloutjob", "job", "Complete");
  const status = assertEveryItemOnce(namespace, "job", 4);
  assert.equal(status.passRate, 1);
  assert.ok(failedCalls(execMethod) >= 5, `the exec faults fired (${execMethod})`);
  await waitFor(
    () => {
      const slots = getJson("sandboxpool", "pool", namespace).status.slots;
      return slots.leased === 0 && slots.free === slots.total;
    },
    30_000,
    "every slot free",
  );

  kubectl(["delete", "sandboxpool", "pool", "-n", namespace, "--wait=false"]);
  await waitFor(() => !exists("sandboxpool", "pool", namespace), 60_000, "the pool finalizer");
  assert.equal(liveMockSandboxes(), 0, "no sandbox left running on Modal");
});
