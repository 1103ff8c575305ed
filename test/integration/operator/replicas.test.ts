import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { kubectl } from "../../support/cluster.ts";
import { assertEveryItemOnce, assertNoLeaks, runnerToken, slowItems } from "./checks.ts";
import {
  apply,
  exists,
  installOperatorPrereqs,
  NODE_IP,
  startControllerProcess,
  startRunnerProcess,
  waitFor,
  type ControllerProcess,
} from "./harness.ts";

/**
 * Two replicas at once, as a Deployment with replicas: 2 runs them: one shared data-dir volume (job state and
 * results must survive a failover), one Lease. Only the holder reconciles and serves runners; the runner is
 * pointed at the follower, which answers 503 naming the leader, and the runner carries on there.
 */
const namespace = `replicas-${process.pid}`;
let a: ControllerProcess;
let b: ControllerProcess;
let runner: ChildProcess | undefined;

before(async () => {
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
  a = await startControllerProcess({ namespace, identity: "replica-a" });
  b = await startControllerProcess({ namespace, identity: "replica-b", dataDir: a.dataDir });
});
after(async () => {
  runner?.kill("SIGKILL");
  kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=true", "--timeout=60s"]);
  await Promise.all([a.kill(), b.kill()]);
  kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

const holder = () => kubectl(["get", "lease", "hermes-rollouts-controller", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}"]);

test("two replicas: only the leader reconciles and serves runners, the follower redirects, the job completes once", async () => {
  await waitFor(() => ["replica-a", "replica-b"].includes(holder()), 20_000, "a leader");
  const [leader, follower] = holder() === "replica-a" ? [a, b] : [b, a];
  const leaseURL = kubectl([
    "get",
    "lease",
    "hermes-rollouts-controller",
    "-n",
    namespace,
    "-o",
    "jsonpath={.metadata.annotations.hermes-rollouts\\.dev/runners-api-url}",
  ]);
  assert.equal(leaseURL, `http://${NODE_IP}:${leader.port}`, "the leader publishes its runners' API on the Lease");

  apply("SandboxPool", namespace, "pool", { backend: "local", minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 2, leaseTTLSeconds: 5 });
  kubectl(["wait", "--for=condition=Ready", "sandboxpool/pool", "-n", namespace, "--timeout=60s"]);
  apply("RolloutJob", namespace, "job", {
    poolRef: { name: "pool" },
    environment: { name: "shell-task" },
    dataset: { inline: slowItems(4, 0) },
    model: { builtin: { policy: "oracle" } },
    groupSize: 2,
    runners: { replicas: 1, trajectoriesPerRunner: 2, image: "localhost/hermes-rollouts:dev" },
    limits: { trajectoryTimeoutSeconds: 5, toolTimeoutSeconds: 5 },
  });
  await waitFor(() => exists("secret", "job-runner-token", namespace), 30_000, "runner token");
  const direct = await fetch(`http://127.0.0.1:${follower.port}/v1/jobs/${namespace}/job/info`, {
    method: "POST",
    headers: { authorization: "Bearer x" },
  });
  assert.equal(direct.status, 503);
  const answer = (await direct.json()) as { retry?: boolean; leaderURL?: string };
  assert.deepEqual([answer.retry, answer.leaderURL], [true, leaseURL], "the follower answers 503, retry, and names the leader");

  runner = startRunnerProcess({
    HERMES_API_URL: `http://${NODE_IP}:${follower.port}`,
    HERMES_JOB_NAMESPACE: namespace,
    HERMES_JOB_NAME: "job",
    HERMES_JOB_TOKEN: runnerToken(namespace, "job"),
    HERMES_RUNNER_ID: "r",
  });
  kubectl(["wait", "--for=condition=Complete", "rolloutjob/job", "-n", namespace, "--timeout=90s"]);
  const status = assertEveryItemOnce(namespace, "job", 4);
  assert.equal(status.passRate, 1);
  const backend = await LocalBackend.open({ rootDir: join(a.dataDir, "sandboxes") });
  await assertNoLeaks(namespace, "pool", backend, 1);
  await backend.close();

  const followerLog = readFileSync(follower.logPath, "utf8");
  assert.doesNotMatch(followerLog, /became leader|SandboxCreated|reconcile failed/, "the follower never reconciled");
  assert.match(readFileSync(leader.logPath, "utf8"), /became leader/);
  assert.equal(holder(), leader === a ? "replica-a" : "replica-b", "no leadership change during the job");
});
