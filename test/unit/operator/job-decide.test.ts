import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { API_VERSION, type RolloutJob } from "../../../src/api/index.ts";
import {
  decide,
  RUNNER_EXIT_GRACE_MS,
  type JobDecision,
  type JobObservation,
  type WorkSnapshot,
} from "../../../src/operator/rolloutjob/decide.ts";
import { JOB_FINALIZER } from "../../../src/operator/rolloutjob/desired.ts";

const now = new Date("2026-01-01T00:00:00Z");
const earlier = new Date(now.getTime() - 60_000).toISOString();

function job(spec: Record<string, unknown> = {}, status?: RolloutJob["status"], meta: Partial<RolloutJob["metadata"]> = {}): RolloutJob {
  return {
    apiVersion: API_VERSION,
    kind: "RolloutJob",
    metadata: { name: "j", namespace: "ns", uid: "uid-1", generation: 1, finalizers: [JOB_FINALIZER], ...meta },
    spec: {
      poolRef: { name: "pool" },
      environment: { name: "shell-task" },
      dataset: { inline: [{ a: 1 }, { a: 2 }] },
      model: { builtin: { policy: "oracle" } },
      runners: { replicas: 2, trajectoriesPerRunner: 1 },
      ...spec,
    } as unknown as RolloutJob["spec"],
    ...(status ? { status } : {}),
  };
}

function work(done: { groups?: number; failed?: number; running?: number } = {}, more: Partial<WorkSnapshot> = {}): WorkSnapshot {
  const { groups = 0, failed = 0, running = 0 } = done;
  return {
    aggregates: {
      items: 2,
      groups,
      scored: groups,
      passed: groups,
      scoreSum: groups,
      failed,
      retried: 0,
      running,
      heldBack: 0,
      filtered: 0,
      completedIndexes: "",
    },
    finished: groups + failed >= 2,
    forwarding: undefined,
    resultsLocation: "/data/ns/j/uid-1/results.jsonl",
    poolGone: false,
    ...more,
  };
}

const pod = (index: number, phase = "Running"): V1Pod => ({
  metadata: { name: `j-runner-${index}`, labels: { "hermes-rollouts.dev/runner-index": String(index) } },
  status: { phase },
});

const readyPool = { deleting: false, ready: true, readyReason: "SandboxesReady" };

function observed(fields: Partial<JobObservation>): JobObservation {
  return {
    job: job(),
    pods: [],
    pool: readyPool,
    work: undefined,
    datasetError: undefined,
    replacedEarlierJob: false,
    tokenToStore: undefined,
    ...fields,
  };
}

/** A decision in short: its writes, Events, phase, each condition as Type=Status/Reason, and the requeue. */
function summary(decision: JobDecision) {
  return {
    actions: decision.actions.map((a) =>
      a.kind === "deletePod" ? `deletePod ${a.name}` : a.kind === "createPod" ? `createPod ${a.index}` : a.kind,
    ),
    events: decision.events.map((e) => `${e.type} ${e.reason}`),
    phase: decision.status?.phase,
    conditions: decision.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`),
    requeueAfterMs: decision.requeueAfterMs,
  };
}

const cases: { name: string; observed: JobObservation; want: ReturnType<typeof summary> }[] = [
  {
    name: "a job on a pool that is not Ready waits Pending, loads nothing and looks again in 2 s",
    observed: observed({ pool: { deleting: false, ready: false, readyReason: "SandboxesStarting" } }),
    want: {
      actions: [],
      events: [],
      phase: "Pending",
      conditions: ["Running=False/PoolNotReady"],
      requeueAfterMs: 2000,
    },
  },
  {
    name: "a running job gets its token stored and a pod per missing index; an ended pod is replaced",
    observed: observed({ work: work({ groups: 1 }), pods: [pod(0, "Failed")], tokenToStore: "t" }),
    want: {
      actions: ["createTokenSecret", "updateWork", "deletePod j-runner-0", "createPod 1"],
      events: [],
      phase: "Running",
      conditions: ["Running=True/RunnersActive", "Suspended=False/NotSuspended"],
      requeueAfterMs: 5000,
    },
  },
  {
    name: "a suspended job stops its runners and hands its work back",
    observed: observed({ job: job({ suspend: true }), work: work({ running: 1 }), pods: [pod(0), pod(1)] }),
    want: {
      actions: ["updateWork", "deletePod j-runner-0", "deletePod j-runner-1", "releaseWork"],
      events: [],
      phase: "Suspended",
      conditions: ["Suspended=True/JobSuspended", "Running=False/JobSuspended"],
      requeueAfterMs: undefined,
    },
  },
  {
    name: "a job whose every item is scored completes: runners keep their pods (logs), running ones get time to exit",
    observed: observed({ work: work({ groups: 2 }), pods: [pod(0), pod(1, "Succeeded")] }),
    want: {
      actions: ["updateWork", "releaseWork"],
      events: ["Normal JobComplete"],
      phase: "Complete",
      conditions: ["Complete=True/AllItemsScored", "Running=False/JobComplete"],
      requeueAfterMs: RUNNER_EXIT_GRACE_MS,
    },
  },
  {
    name: "a job with items failed past backoffLimit fails, with a Warning, and is looked at again after its TTL",
    observed: observed({ job: job({ ttlSecondsAfterFinished: 30 }), work: work({ groups: 1, failed: 1 }) }),
    want: {
      actions: ["updateWork", "releaseWork"],
      events: ["Warning JobFailed"],
      phase: "Failed",
      conditions: ["Failed=True/BackoffLimitExceeded", "Running=False/JobFailed"],
      requeueAfterMs: 30_000,
    },
  },
  {
    name: "an invalid spec fails the job with one Warning, and no writes but the status",
    observed: observed({ job: job({ groupSize: 0 }) }),
    want: {
      actions: [],
      events: ["Warning InvalidSpec"],
      phase: "Failed",
      conditions: ["Failed=True/InvalidSpec", "Running=False/InvalidSpec"],
      requeueAfterMs: undefined,
    },
  },
  {
    name: "a deleted job with the finalizer: work retired, runners stopped, restored leases released, token deleted, finalizer off",
    observed: observed({ job: job({}, undefined, { deletionTimestamp: earlier }), work: work(), pods: [pod(0)] }),
    want: {
      actions: ["retire", "deletePod j-runner-0", "releaseWork", "releaseRestoredLeases", "deleteSecret", "setFinalizers"],
      events: [],
      phase: undefined,
      conditions: undefined,
      requeueAfterMs: undefined,
    },
  },
  {
    name: "a deleted job without the finalizer is left alone",
    observed: observed({ job: job({}, undefined, { deletionTimestamp: earlier, finalizers: [] }), work: work() }),
    want: { actions: [], events: [], phase: undefined, conditions: undefined, requeueAfterMs: undefined },
  },
  {
    name: "a job gone from the cache: its work is retired and released",
    observed: observed({ job: undefined, work: work() }),
    want: { actions: ["retire", "releaseWork"], events: [], phase: undefined, conditions: undefined, requeueAfterMs: undefined },
  },
  {
    name: "the pool deleted under a started job: runners stop, items wait, one Warning",
    observed: observed({
      job: job({}, { startTime: earlier }),
      pool: undefined,
      work: work({ running: 2 }),
      pods: [pod(0)],
    }),
    want: {
      actions: ["updateWork", "deletePod j-runner-0", "releaseWork"],
      events: ["Warning PoolDeleted"],
      phase: "Pending",
      conditions: ["Running=False/PoolDeleted"],
      requeueAfterMs: 2000,
    },
  },
];

for (const { name, observed: input, want } of cases) {
  test(`decide: ${name}`, () => {
    assert.deepEqual(summary(decide(input, now)), want);
  });
}

test("decide: a job that has not got the finalizer gets it before anything else", () => {
  const decision = decide(observed({ job: job({}, undefined, { finalizers: ["other"] }), work: work() }), now);
  assert.deepEqual(decision.actions[0], { kind: "setFinalizers", finalizers: ["other", JOB_FINALIZER] });
});

test("decide: stopped work is reported with nothing running (its items were handed back)", () => {
  const decision = decide(observed({ job: job({ suspend: true }), work: work({ running: 2 }) }), now);
  assert.equal(decision.status!.progress!.running, 0);
});

test("decide: a finished job is deleted once its TTL has passed, and looked at again when it will have", () => {
  const finished = (completionTime: string) =>
    job(
      { ttlSecondsAfterFinished: 60 },
      {
        completionTime,
        conditions: [{ type: "Complete", status: "True", reason: "AllItemsScored", message: "", lastTransitionTime: completionTime }],
      },
    );
  assert.equal(decide(observed({ job: finished(earlier) }), now).actions.at(-1)!.kind, "deleteJob");
  const recent = new Date(now.getTime() - 20_000).toISOString();
  assert.deepEqual(summary(decide(observed({ job: finished(recent) }), now)).requeueAfterMs, 40_000);
});

test("decide: a finished job keeps its ended runner pods (their logs) and stops one still running past the grace", () => {
  const completionTime = earlier;
  const finished = job(
    {},
    {
      completionTime,
      conditions: [{ type: "Complete", status: "True", reason: "AllItemsScored", message: "", lastTransitionTime: completionTime }],
    },
  );
  const pods = [pod(0, "Succeeded"), pod(1, "Failed"), pod(2, "Running")];
  assert.deepEqual(summary(decide(observed({ job: finished, work: work({ groups: 2 }), pods }), now)).actions, [
    "retire",
    "deletePod j-runner-2",
    "releaseWork",
  ]);
});

test("decide: a runner still running within the exit grace is left to exit, and looked at again when the grace ends", () => {
  const completionTime = new Date(now.getTime() - 10_000).toISOString();
  const finished = job(
    { ttlSecondsAfterFinished: 3600 },
    {
      completionTime,
      conditions: [{ type: "Complete", status: "True", reason: "AllItemsScored", message: "", lastTransitionTime: completionTime }],
    },
  );
  // Its work stays served (not retired), so the runner's next call is answered "done".
  const decision = summary(decide(observed({ job: finished, work: work({ groups: 2 }), pods: [pod(0)] }), now));
  assert.deepEqual(decision.actions, ["releaseWork"]);
  assert.equal(decision.requeueAfterMs, RUNNER_EXIT_GRACE_MS - 10_000);
});
