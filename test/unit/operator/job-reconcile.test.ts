import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { API_VERSION, sandboxPoolSpec, type RolloutJob, type RolloutJobStatus, type SandboxPool } from "../../../src/api/index.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import { ActiveJobs } from "../../../src/operator/runners-api/registry.ts";
import { JOB_FINALIZER } from "../../../src/operator/rolloutjob/desired.ts";
import { jobReconciler } from "../../../src/operator/rolloutjob/reconcile.ts";
import { JobDatasets } from "../../../src/operator/rolloutjob/dataset.ts";
import { RUNNER_EXIT_GRACE_MS } from "../../../src/operator/rolloutjob/decide.ts";
import { PoolRuntimes } from "../../../src/operator/sandboxpool/runtimes.ts";
import { apiRefusal, fakeBackend, recordingClient, recordingRecorder } from "./fakes.ts";
import { FakeClock } from "../../../src/base/clock.ts";
import { TOKENIZER_CONFIGMAP_DIRECTORY } from "../../../src/rollout/tokenizer-mount.ts";

const dataDir = mkdtempSync(join(tmpdir(), "job-reconcile-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));
const now = new Date("2026-01-01T00:00:00Z");

const readyPool: SandboxPool = {
  apiVersion: API_VERSION,
  kind: "SandboxPool",
  metadata: { name: "pool", namespace: "ns" },
  spec: sandboxPoolSpec.parse({ backend: "local" }),
  status: { conditions: [{ type: "Ready", status: "True", reason: "SandboxesReady", message: "", lastTransitionTime: now.toISOString() }] },
};

/** A job the controller already put its finalizer on (the first reconcile's write, tested on its own). */
function job(spec: Record<string, unknown>, name = "j", finalizers = [JOB_FINALIZER]): RolloutJob {
  return {
    apiVersion: API_VERSION,
    kind: "RolloutJob",
    metadata: { name, namespace: "ns", uid: "uid-1", generation: 1, finalizers },
    spec: {
      poolRef: { name: "pool" },
      environment: { name: "shell-task" },
      dataset: { inline: [{ a: 1 }, { a: 2 }] },
      model: { builtin: { policy: "oracle" } },
      ...spec,
    } as unknown as RolloutJob["spec"],
  };
}

async function setup(
  j: RolloutJob,
  options: {
    pool?: SandboxPool;
    pods?: V1Pod[];
    secrets?: Record<string, Record<string, string>>;
    datasetError?: string;
    dataDir?: string;
    /** Rows through the controller's real loader (the environment's filter) instead of the inline rows as they are. */
    realDatasets?: boolean;
    refuse?: { createPod?: Error; createSecret?: Error };
  } = {},
) {
  const rec = recordingClient({ secrets: options.secrets });
  if (options.refuse) Object.assign(rec.refuse, options.refuse);
  const events = recordingRecorder();
  const fake = fakeBackend();
  const runtimes = new PoolRuntimes(async () => fake.backend, new InMemoryLeaseStore());
  const pool = options.pool ?? readyPool;
  await runtimes.ensure({ key: "ns/pool", namespace: "ns", name: "pool", uid: "pool-uid" }, pool.spec);
  const active = new ActiveJobs();
  const reconcile = jobReconciler({
    getJob: () => j,
    getPool: () => (options.pool === undefined ? readyPool : options.pool),
    listRunnerPods: () => options.pods ?? [],
    client: rec.client,
    runtimes,
    active,
    recorder: events.recorder,
    loadDataset: async (ns, spec) => {
      if (options.datasetError) throw new Error(options.datasetError);
      if (options.realDatasets) return new JobDatasets({ readConfigMap: async () => undefined }, dataDir).load(ns, spec);
      return { rows: spec.dataset.inline ?? [], environmentConfig: {} };
    },
    restoredSlotLeases: async () => [],
    enqueue: () => {},
    runnerPods: { apiURL: "http://10.0.0.1:8080", defaultImage: "localhost/hermes-rollouts:dev", imagePullPolicy: "Never" },
    dataDir: options.dataDir ?? join(dataDir, String(Math.random())),
    clock: new FakeClock(now.getTime()),
  });
  return { rec, events, active, reconcile };
}

const statusOf = (body: unknown) => body as RolloutJobStatus;
const lastStatus = (actions: { verb: string; body?: unknown }[]) => actions.findLast((a) => a.verb === "patchStatus")!.body;

test("an invalid job gets Failed=True InvalidSpec naming the field, a Warning event, and no pods", async () => {
  const { rec, events, reconcile } = await setup(job({ groupSize: 0 }));
  await reconcile("ns/j");
  const [write] = rec.expect(["patchStatus RolloutJob/ns/j"]);
  const failed = statusOf(write!.body).conditions!.find((c) => c.type === "Failed")!;
  assert.equal(failed.reason, "InvalidSpec");
  assert.match(failed.message, /spec\.groupSize/);
  assert.equal(statusOf(write!.body).phase, "Failed");
  assert.ok(events.events[0]!.startsWith("Warning InvalidSpec"));
});

test("a job whose pool is not Ready waits with Running=False PoolNotReady", async () => {
  const notReady = {
    ...readyPool,
    status: { conditions: [{ ...readyPool.status!.conditions![0]!, status: "False" as const, reason: "SandboxesStarting" }] },
  };
  const { rec, reconcile } = await setup(job({}), { pool: notReady });
  const result = await reconcile("ns/j");
  const [write] = rec.expect(["patchStatus RolloutJob/ns/j"]);
  const running = statusOf(write!.body).conditions!.find((c) => c.type === "Running")!;
  assert.deepEqual([running.status, running.reason], ["False", "PoolNotReady"]);
  assert.match(running.message, /SandboxesStarting/);
  assert.equal(statusOf(write!.body).phase, "Pending");
  assert.equal(result.requeueAfterMs, 2000);
});

test("a runnable job gets its token Secret, one pod per replica owned by the job, and Running status", async () => {
  const { rec, reconcile } = await setup(
    job({ runners: { replicas: 2, trajectoriesPerRunner: 1, resources: { limits: { memory: "1Gi" } } } }),
  );
  await reconcile("ns/j");
  const [secret, pod0, , status] = rec.expect([
    "createSecret ns/j-runner-token",
    "createPod ns/j-runner-0",
    "createPod ns/j-runner-1",
    "patchStatus RolloutJob/ns/j",
  ]);
  assert.equal((secret!.body as { metadata: { ownerReferences: { uid: string }[] } }).metadata.ownerReferences[0]!.uid, "uid-1");
  const pod = pod0!.body as V1Pod;
  const container = pod.spec!.containers[0]!;
  assert.equal(container.image, "localhost/hermes-rollouts:dev");
  assert.equal(container.imagePullPolicy, "Never");
  assert.deepEqual(container.resources, { limits: { memory: "1Gi" } });
  assert.equal(pod.spec!.terminationGracePeriodSeconds, 10);
  assert.equal(container.env!.find((e) => e.name === "HERMES_API_URL")!.value, "http://10.0.0.1:8080");
  assert.equal(container.env!.find((e) => e.name === "HERMES_JOB_TOKEN")!.valueFrom!.secretKeyRef!.name, "j-runner-token");
  assert.equal(pod.metadata!.ownerReferences![0]!.controller, true);
  const s = statusOf(status!.body);
  assert.equal(s.phase, "Running");
  assert.equal(s.progressSummary, "0/2");
});

test("the model API key comes from the job's Secret into the runner's env", async () => {
  const { rec, reconcile } = await setup(
    job({ model: { baseURL: "http://vllm:8000/v1", apiKeySecretRef: { name: "model-key", key: "k" } } }),
    { secrets: { "ns/j-runner-token": { token: "t" } } },
  );
  await reconcile("ns/j");
  const [pod] = rec.expect(["createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  const key = (pod!.body as V1Pod).spec!.containers[0]!.env!.find((e) => e.name === "OPENAI_API_KEY")!;
  assert.deepEqual(key.valueFrom!.secretKeyRef, { name: "model-key", key: "k" });
});

test("a Hub tokenizer's token comes from its Secret into the runner's HF_TOKEN", async () => {
  const tokenizer = { huggingFace: { model: "acme/gated", tokenSecretRef: { name: "hub", key: "token" } } };
  const { rec, reconcile } = await setup(job({ model: { baseURL: "http://vllm:8000/v1", server: "vllm", tokenizer } }), {
    secrets: { "ns/j-runner-token": { token: "t" } },
  });
  await reconcile("ns/j");
  const [pod] = rec.expect(["createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  const token = (pod!.body as V1Pod).spec!.containers[0]!.env!.find((e) => e.name === "HF_TOKEN")!;
  assert.deepEqual(token.valueFrom!.secretKeyRef, { name: "hub", key: "token" });
});

test("a ConfigMap tokenizer is mounted read-only where the runner reads it; other runners get no volume", async () => {
  const tokenizer = { configMap: { name: "tiny-tokenizer" } };
  const { rec, reconcile } = await setup(job({ model: { baseURL: "http://vllm:8000/v1", server: "vllm", tokenizer } }), {
    secrets: { "ns/j-runner-token": { token: "t" } },
  });
  await reconcile("ns/j");
  const [created] = rec.expect(["createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  const pod = created!.body as V1Pod;
  assert.deepEqual(pod.spec!.volumes, [{ name: "tokenizer", configMap: { name: "tiny-tokenizer" } }]);
  assert.deepEqual(pod.spec!.containers[0]!.volumeMounts, [
    { name: "tokenizer", mountPath: TOKENIZER_CONFIGMAP_DIRECTORY, readOnly: true },
  ]);

  const other = await setup(job({}), { secrets: { "ns/j-runner-token": { token: "t" } } });
  await other.reconcile("ns/j");
  const [plain] = other.rec.expect(["createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  assert.equal((plain!.body as V1Pod).spec!.volumes, undefined);
  assert.equal((plain!.body as V1Pod).spec!.containers[0]!.volumeMounts, undefined);
});

test("scored groups drive status to Complete with passRate and compact indexes; a running runner gets time to exit", async () => {
  const running: V1Pod = {
    metadata: { name: "j-runner-0", labels: { "hermes-rollouts.dev/runner-index": "0" } },
    status: { phase: "Running" },
  };
  const { rec, active, reconcile } = await setup(job({ groupSize: 2 }), {
    pods: [running],
    secrets: { "ns/j-runner-token": { token: "t" } },
  });
  await reconcile("ns/j");
  rec.expect(["patchStatus RolloutJob/ns/j"]);
  const tracker = active.get("ns/j")!.tracker;
  await tracker.submit({ index: 0, attempt: 1, scores: [1, 1], group: {} });
  await tracker.submit({ index: 1, attempt: 1, scores: [1, 0], group: {} });
  // The runner is told "done" at its next call: it is stopped only if it has not exited within the grace.
  assert.deepEqual(await reconcile("ns/j"), { requeueAfterMs: RUNNER_EXIT_GRACE_MS });
  const [status] = rec.expect(["patchStatus RolloutJob/ns/j"]);
  const s = statusOf(status!.body);
  assert.equal(s.phase, "Complete");
  assert.equal(s.passRate, 0.75);
  assert.equal(s.scoreMean, 0.75);
  assert.equal(s.completedIndexes, "0-1");
  assert.equal(s.progressSummary, "2/2");
  assert.equal(s.conditions!.find((c) => c.type === "Complete")!.reason, "AllItemsScored");
});

test("suspend deletes the runners and keeps the job's work", async () => {
  const running: V1Pod = {
    metadata: { name: "j-runner-0", labels: { "hermes-rollouts.dev/runner-index": "0" } },
    status: { phase: "Running" },
  };
  const { rec, reconcile } = await setup(job({ suspend: true }), { pods: [running], secrets: { "ns/j-runner-token": { token: "t" } } });
  await reconcile("ns/j");
  const [, status] = rec.expect(["deletePod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  assert.equal(statusOf(status!.body).phase, "Suspended");
  assert.equal(statusOf(status!.body).conditions!.find((c) => c.type === "Suspended")!.status, "True");
});

test("a finished job is deleted ttlSecondsAfterFinished after completion, not before", async () => {
  const done = job({ ttlSecondsAfterFinished: 60 });
  done.status = {
    completionTime: new Date(now.getTime() - 30_000).toISOString(),
    conditions: [{ type: "Complete", status: "True", reason: "AllItemsScored", message: "", lastTransitionTime: now.toISOString() }],
  };
  const early = await setup(done);
  assert.equal((await early.reconcile("ns/j")).requeueAfterMs, 30_000);
  early.rec.expect([]);
  done.status.completionTime = new Date(now.getTime() - 60_000).toISOString();
  const late = await setup(done);
  await late.reconcile("ns/j");
  late.rec.expect(["delete RolloutJob/ns/j"]);
});

test("the first reconcile of a valid job puts the finalizer on before any runner exists", async () => {
  const { rec, reconcile } = await setup(job({}, "j", []), { secrets: { "ns/j-runner-token": { token: "t" } } });
  await reconcile("ns/j");
  const [finalizer] = rec.expect(["setFinalizers RolloutJob/ns/j", "createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  assert.deepEqual(finalizer!.body, [JOB_FINALIZER]);
});

test("a deleted job stops its runners, deletes its token Secret and then lets go of the finalizer", async () => {
  const running: V1Pod = {
    metadata: { name: "j-runner-0", labels: { "hermes-rollouts.dev/runner-index": "0" } },
    status: { phase: "Running" },
  };
  const j = job({}, "j", [JOB_FINALIZER, "other"]);
  const { rec, active, reconcile } = await setup(j, { pods: [running], secrets: { "ns/j-runner-token": { token: "t" } } });
  await reconcile("ns/j");
  rec.expect(["patchStatus RolloutJob/ns/j"]);
  j.metadata.deletionTimestamp = now.toISOString();
  await reconcile("ns/j");
  const [, , finalizers] = rec.expect(["deletePod ns/j-runner-0", "deleteSecret ns/j-runner-token", "setFinalizers RolloutJob/ns/j"]);
  assert.deepEqual(finalizers!.body, ["other"]);
  assert.equal(active.get("ns/j"), undefined);
});

test("a dataset that fails to load sets Running=False DatasetError with message and code, once as an Event, retries later", async () => {
  const { rec, events, reconcile } = await setup(job({}), { datasetError: "ConfigMap ns/rows not found" });
  const result = await reconcile("ns/j");
  const [write] = rec.expect(["patchStatus RolloutJob/ns/j"]);
  const running = statusOf(write!.body).conditions!.find((c) => c.type === "Running")!;
  assert.deepEqual([running.status, running.reason], ["False", "DatasetError"]);
  assert.match(running.message, /ConfigMap ns\/rows not found \[HR_DATASET_UNREADABLE\]$/);
  assert.ok(events.events.some((e) => e.startsWith("Warning DatasetError") && e.endsWith("[HR_DATASET_UNREADABLE]")));
  assert.equal(result.requeueAfterMs, 15_000);
});

test("a job's rows are fixed when it starts: a restarted controller serves the same rows even if the source changed", async () => {
  const shared = join(dataDir, "restart");
  const first = await setup(job({}), { secrets: { "ns/j-runner-token": { token: "t" } }, dataDir: shared });
  await first.reconcile("ns/j");
  assert.deepEqual(await first.active.get("ns/j")!.rows.row(1), { a: 2 });
  const edited = job({ dataset: { inline: [{ a: 9 }, { a: 8 }, { a: 7 }] } });
  const restarted = await setup(edited, { secrets: { "ns/j-runner-token": { token: "t" } }, dataDir: shared });
  await restarted.reconcile("ns/j");
  const rows = restarted.active.get("ns/j")!.rows;
  assert.deepEqual([rows.count, await rows.row(1)], [2, { a: 2 }], "item indexes keep meaning what the stored results say");
});

test("rows the environment leaves out are counted in status.progress.filtered, and still after a restart", async () => {
  const shared = join(dataDir, "filtered");
  const sweRow = (id: string, tests: string[]) => ({
    instance_id: id,
    repo: "owner/lib",
    base_commit: "0123456789abcdef0123456789abcdef01234567",
    problem_statement: "It breaks.",
    FAIL_TO_PASS: tests,
    PASS_TO_PASS: [],
    patch: "diff --git a/x b/x\n",
  });
  const rows = [
    sweRow("py-1", ["tests/test_a.py::test_one"]),
    sweRow("js", ["test/a.test.js > works"]), // no test profile runs it (pythonOnly is on by default)
    sweRow("py-2", ["tests/test_a.py::test_two"]),
    sweRow("js-2", ["test/b.test.js > works"]),
  ];
  const spec = { environment: { name: "swe-smith-oracle" }, dataset: { inline: rows } };
  const token = { "ns/j-runner-token": { token: "t" } };
  const first = await setup(job(spec), { secrets: token, dataDir: shared, realDatasets: true });
  await first.reconcile("ns/j");
  const status = statusOf(lastStatus(first.rec.actions));
  assert.deepEqual([status.progress?.items, status.progress?.filtered, status.progressSummary], [2, 2, "0/2"]);
  assert.deepEqual(((await first.active.get("ns/j")!.rows.row(1)) as { instance_id: string }).instance_id, "py-2");

  // The restarted controller does not read the dataset again (here: it now has no refused rows); the count is kept.
  const edited = job({ ...spec, dataset: { inline: [rows[0], rows[2]] } });
  const restarted = await setup(edited, { secrets: token, dataDir: shared, realDatasets: true });
  await restarted.reconcile("ns/j");
  assert.equal(statusOf(lastStatus(restarted.rec.actions)).progress?.filtered, 2);
});

test("a job deleted and re-created under the same name starts afresh (a new uid), the old results kept", async () => {
  const shared = join(dataDir, "recreated");
  const old = await setup(job({}), { secrets: { "ns/j-runner-token": { token: "t" } }, dataDir: shared });
  await old.reconcile("ns/j");
  const tracker = old.active.get("ns/j")!.tracker;
  await tracker.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  const again = job({});
  again.metadata.uid = "uid-2";
  const fresh = await setup(again, { secrets: { "ns/j-runner-token": { token: "t" } }, dataDir: shared });
  await fresh.reconcile("ns/j");
  assert.equal(fresh.active.get("ns/j")!.tracker.aggregates().groups, 0);
  assert.notEqual(fresh.active.get("ns/j")!.tracker.resultsPath, tracker.resultsPath);
  assert.equal(readFileSync(tracker.resultsPath, "utf8").trim().split("\n").length, 1, "the first job's results stay on disk");
});

test("a started job stays Running while its pool scales up for its runners (no flap to Pending), and keeps them", async () => {
  const scaling = {
    ...readyPool,
    status: { conditions: [{ ...readyPool.status!.conditions![0]!, status: "False" as const, reason: "SandboxesStarting" }] },
  };
  const started = job({ runners: { replicas: 2, trajectoriesPerRunner: 4 } });
  const running: V1Pod = {
    metadata: { name: "j-runner-0", labels: { "hermes-rollouts.dev/runner-index": "0" } },
    status: { phase: "Running" },
  };
  const since = new Date(now.getTime() - 60_000).toISOString();
  started.status = {
    startTime: since,
    phase: "Running",
    conditions: [
      { type: "Running", status: "True", reason: "RunnersActive", message: "", lastTransitionTime: since, observedGeneration: 1 },
    ],
  };
  const { rec, reconcile } = await setup(started, { pool: scaling, pods: [running], secrets: { "ns/j-runner-token": { token: "t" } } });
  await reconcile("ns/j");
  const [, status] = rec.expect(["createPod ns/j-runner-1", "patchStatus RolloutJob/ns/j"]);
  const s = statusOf(status!.body);
  assert.equal(s.phase, "Running");
  const condition = s.conditions!.find((c) => c.type === "Running")!;
  assert.deepEqual([condition.status, condition.lastTransitionTime], ["True", since]);
});

test("a job deleted and re-created between two reconciles of one controller gets its own work, not the old job's", async () => {
  const j = job({});
  const { active, reconcile } = await setup(j, { secrets: { "ns/j-runner-token": { token: "t" } } });
  await reconcile("ns/j");
  const old = active.get("ns/j")!;
  await old.tracker.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  j.metadata.uid = "uid-2"; // the informer cache now holds the new object under the same key
  await reconcile("ns/j");
  const current = active.get("ns/j")!;
  assert.notEqual(current, old);
  assert.equal(current.uid, "uid-2");
  assert.equal(current.tracker.aggregates().groups, 0, "nothing of the old job's results");
});

const runningPod = (index: number): V1Pod => ({
  metadata: { name: `j-runner-${index}`, labels: { "hermes-rollouts.dev/runner-index": String(index) } },
  status: { phase: "Running" },
});

test("a refused runner pod is ReplicaFailure=True PodCreateFailed with the apiserver's message, a Warning, one status write", async () => {
  const quota = 'pods "j-runner-0" is forbidden: exceeded quota: runners, requested: pods=1, used: pods=4, limited: pods=4';
  const j = job({ runners: { replicas: 2, trajectoriesPerRunner: 1 } });
  const { rec, events, reconcile } = await setup(j, {
    secrets: { "ns/j-runner-token": { token: "t" } },
    refuse: { createPod: apiRefusal(403, quota) },
  });
  await assert.rejects(reconcile("ns/j"), /HTTP-Code: 403/, "the queue retries the key with backoff");
  // The second pod is not tried: it would be refused alike.
  const [, write] = rec.expect(["createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  const failure = statusOf(write!.body).conditions!.find((c) => c.type === "ReplicaFailure")!;
  assert.deepEqual([failure.status, failure.reason, failure.message], ["True", "PodCreateFailed", `runner pod 0: ${quota}`]);
  assert.deepEqual(events.events, [`Warning PodCreateFailed: runner pod 0: ${quota}`]);

  j.status = statusOf(write!.body);
  rec.refuse.createPod = undefined;
  assert.equal((await reconcile("ns/j")).requeueAfterMs, 5000);
  const [, , cleared] = rec.expect(["createPod ns/j-runner-0", "createPod ns/j-runner-1", "patchStatus RolloutJob/ns/j"]);
  assert.equal(
    statusOf(cleared!.body).conditions!.find((c) => c.type === "ReplicaFailure"),
    undefined,
    "gone once a create succeeds",
  );
});

test("a refused token Secret is ReplicaFailure=True SecretCreateFailed; no runner starts, the job is not served without it", async () => {
  const j = job({});
  const { rec, events, active, reconcile } = await setup(j, { refuse: { createSecret: apiRefusal(403, "secrets is forbidden") } });
  await assert.rejects(reconcile("ns/j"));
  const [, write] = rec.expect(["createSecret ns/j-runner-token", "patchStatus RolloutJob/ns/j"]);
  const failure = statusOf(write!.body).conditions!.find((c) => c.type === "ReplicaFailure")!;
  assert.deepEqual([failure.reason, failure.message], ["SecretCreateFailed", "token Secret: secrets is forbidden"]);
  assert.ok(events.events.includes("Warning SecretCreateFailed: token Secret: secrets is forbidden"));
  assert.equal(active.get("ns/j"), undefined, "runners' API: no token to check them against");

  j.status = statusOf(write!.body);
  rec.refuse.createSecret = undefined;
  await reconcile("ns/j");
  rec.expect(["createSecret ns/j-runner-token", "createPod ns/j-runner-0", "patchStatus RolloutJob/ns/j"]);
  assert.ok(active.get("ns/j"));
});

test("every pass writes status at most once, and not at all when nothing changed", async () => {
  const j = job({ runners: { replicas: 1, trajectoriesPerRunner: 1 } });
  const pods: V1Pod[] = [];
  const { rec, active, reconcile } = await setup(j, { pods, secrets: { "ns/j-runner-token": { token: "t" } } });
  const pass = async () => {
    await reconcile("ns/j");
    const writes = rec.actions.filter((a) => a.verb === "patchStatus");
    assert.ok(writes.length <= 1, `${writes.length} status writes in one pass`);
    if (writes[0]) j.status = statusOf(writes[0].body);
    rec.actions.splice(0);
    return writes.length;
  };
  assert.equal(await pass(), 1, "first pass: Running");
  pods.push(runningPod(0));
  assert.equal(await pass(), 1, "the runner pod is counted");
  assert.equal(await pass(), 0, "nothing changed");
  j.spec = { ...j.spec, suspend: true };
  assert.equal(await pass(), 1, "suspended");
  pods.splice(0);
  j.spec = { ...j.spec, suspend: false };
  assert.equal(await pass(), 1, "resumed");
  await active.get("ns/j")!.tracker.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  await active.get("ns/j")!.tracker.submit({ index: 1, attempt: 1, scores: [1], group: {} });
  assert.equal(await pass(), 1, "complete");
  assert.equal(j.status!.phase, "Complete");
  assert.equal(await pass(), 0, "a finished job's status is left alone");
});
