import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type { ChildProcess } from "node:child_process";
import { kubectl } from "../../support/cluster.ts";
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

const namespace = `restart-${process.pid}`;
// Enough items that several trajectories are mid-flight (holding slots, in terminal calls) when the controller dies.
const ITEMS = 12;
const items = Array.from({ length: ITEMS }, (_, i) => ({
  id: `t${i}`,
  goal: `write ${i}`,
  check: `test "$(cat answer.txt)" = ${i}`,
  solution: `sleep 1; echo ${i} > answer.txt`,
}));
interface StoredGroup {
  index: number;
  scores: number[];
  group: { metadata: { trajectories: { sandbox: string; slot: number; tool_errors: number }[] } };
}
let controller: ControllerProcess;
let runner: ChildProcess | undefined;

before(async () => {
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
  controller = await startControllerProcess({ namespace, identity: "first" });
});
after(async () => {
  runner?.kill("SIGKILL");
  kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=true", "--timeout=60s"]);
  await controller.kill();
  kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

test("the controller killed mid-job and restarted (new identity, same data dir) loses and repeats no scored item", async () => {
  apply("SandboxPool", namespace, "pool", { backend: "local", minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 4 });
  kubectl(["wait", "--for=condition=Ready", "sandboxpool/pool", "-n", namespace, "--timeout=60s"]);
  apply("RolloutJob", namespace, "job", {
    poolRef: { name: "pool" },
    environment: { name: "shell-task" },
    dataset: { inline: items },
    model: { builtin: { policy: "oracle" } },
    groupSize: 2,
    runners: { replicas: 1, trajectoriesPerRunner: 4, image: "localhost/hermes-rollouts:dev" },
  });
  await waitFor(() => exists("secret", "job-runner-token", namespace), 30_000, "runner token");
  const token = Buffer.from(
    kubectl(["get", "secret", "job-runner-token", "-n", namespace, "-o", "jsonpath={.data.token}"]),
    "base64",
  ).toString();
  runner = startRunnerProcess({
    HERMES_API_URL: `http://${NODE_IP}:${controller.port}`,
    HERMES_JOB_NAMESPACE: namespace,
    HERMES_JOB_NAME: "job",
    HERMES_JOB_TOKEN: token,
    HERMES_RUNNER_ID: "r",
  });
  await waitFor(() => (getJson("rolloutjob", "job", namespace).status?.progress?.groups ?? 0) >= 2, 60_000, "two scored groups");

  await controller.kill("SIGKILL");
  const groupsAtKill = readFileSync(getJson("rolloutjob", "job", namespace).status.resultsLocation, "utf8")
    .trim()
    .split("\n").length;
  assert.ok(groupsAtKill < ITEMS, "killed mid-job");
  // A new replica (another identity) waits out the dead leader's Lease, then serves the same port and data.
  controller = await startControllerProcess({ namespace, identity: "second", port: controller.port, dataDir: controller.dataDir });

  kubectl(["wait", "--for=condition=Complete", "rolloutjob/job", "-n", namespace, "--timeout=180s"]);
  const { status } = getJson("rolloutjob", "job", namespace);
  const records = readFileSync(status.resultsLocation, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as StoredGroup);
  assert.deepEqual(
    records.map((r) => r.index).sort((a, b) => a - b),
    items.map((_, i) => i),
    "every item stored exactly once",
  );
  // Every trajectory ran the oracle's solution: one whose slot or controller went away under it was retried, not
  // scored 0, and no terminal call that failed in the outage reached the model as a tool result.
  const unsolved = records
    .flatMap((r) =>
      r.group.metadata.trajectories.map((t, i) => ({
        index: r.index,
        slot: `${t.sandbox}/${t.slot}`,
        score: r.scores[i],
        toolErrors: t.tool_errors,
      })),
    )
    .filter((t) => t.score !== 1 || t.toolErrors !== 0);
  assert.deepEqual(unsolved, [], "trajectories scored as task failures");
  assert.equal(status.progress.groups, ITEMS);
  assert.equal(status.passRate, 1);
  assert.equal(status.completedIndexes, `0-${ITEMS - 1}`);
  // Pool status refreshes on the pool's own reconcile period: every slot must come back, none may leak.
  await waitFor(() => getJson("sandboxpool", "pool", namespace).status.slots.leased === 0, 20_000, "all slots released");
});
