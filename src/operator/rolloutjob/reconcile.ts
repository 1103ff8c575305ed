import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { validateRolloutJobSpec, type RolloutJob, type RolloutJobSpec, type SandboxPool } from "../../api/index.ts";
import type { ClusterClient } from "../client.ts";
import type { ActiveJob, ActiveJobs } from "../runners-api/registry.ts";
import { isTrue, findCondition } from "../runtime/conditions.ts";
import type { ReconcileResult } from "../runtime/controller.ts";
import type { Recorder } from "../runtime/events.ts";
import type { PoolRuntimes } from "../sandboxpool/runtimes.ts";
import {
  runnerPod,
  workLeaseTTLMs,
  tokenSecret,
  tokenSecretName,
  TOKEN_KEY,
  RUNNER_INDEX_LABEL,
  type RunnerPodSettings,
} from "./desired.ts";
import { computeJobStatus, poolBlocker, type JobState } from "./status.ts";
import { ResultsForwarder } from "./forward.ts";
import { SpooledRows } from "./rows.ts";
import { JobTracker } from "./tracker.ts";
import { AtroposSink } from "../../rollout/sinks.ts";
import type { Clock } from "../../base/clock.ts";

class DatasetError extends Error {}

export interface LoadedDataset {
  /** Read once, when the job first starts; then its spool on disk is used. */
  rows: AsyncIterable<unknown> | Iterable<unknown>;
  environmentConfig: Record<string, unknown>;
}

export interface JobReconcilerDeps {
  getJob: (namespace: string, name: string) => RolloutJob | undefined;
  getPool: (namespace: string, name: string) => SandboxPool | undefined;
  listRunnerPods: (namespace: string, jobName: string) => readonly V1Pod[];
  client: ClusterClient;
  runtimes: PoolRuntimes;
  active: ActiveJobs;
  recorder: Recorder;
  loadDataset: (namespace: string, spec: RolloutJobSpec) => Promise<LoadedDataset>;
  /** Slot lease ids a job held before a restart (from the lease store), so its runners keep them. */
  restoredSlotLeases: (poolKey: string, jobKey: string) => Promise<string[]>;
  /** Enqueues the job again (scored groups arrived). */
  enqueue: (key: string) => void;
  runnerPods: RunnerPodSettings;
  dataDir: string;
  clock: Clock;
  /** First retry delay of result forwarding to a trainer (tests shorten it). */
  forwardRetryDelayMs?: number;
}

/** Held until the job's runners are stopped, its slot leases released and its token Secret deleted. */
export const JOB_FINALIZER = "hermes-rollouts.dev/runner-leases";

const terminal = (job: RolloutJob) => isTrue(job.status?.conditions, "Complete") || isTrue(job.status?.conditions, "Failed");

/** observe (caches, tracker) → decide the job's state (pure) → apply (token, pods, slot releases, one status write). */
export function jobReconciler(deps: JobReconcilerDeps) {
  /** Forgets a job the runners' API served; its forwarder stops (what it has not sent stays in the JSONL). */
  function retire(key: string): ActiveJob | undefined {
    const gone = deps.active.delete(key);
    void gone?.forwarder?.close();
    void gone?.rows.close();
    return gone;
  }

  async function stopWork(active: ActiveJob | undefined, pods: readonly V1Pod[], namespace: string): Promise<void> {
    for (const pod of pods) if (!pod.metadata?.deletionTimestamp) await deps.client.deletePod(namespace, pod.metadata!.name!);
    if (!active) return;
    active.tracker.handBackAll();
    const pool = deps.runtimes.get(active.poolKey);
    for (const leaseId of active.slotLeases) await pool?.slots.release(leaseId);
    active.slotLeases.clear();
  }

  async function activate(key: string, job: RolloutJob, spec: RolloutJobSpec, poolKey: string, pods: readonly V1Pod[]): Promise<ActiveJob> {
    const namespace = job.metadata.namespace ?? "default";
    const existing = deps.active.get(key);
    if (existing?.uid === (job.metadata.uid ?? "")) return existing;
    // The job was deleted and re-created under its name between two reconciles: the old one's work ends here.
    if (existing) await stopWork(retire(key), pods, namespace);
    // Keyed by uid: a job re-created under the same name starts afresh instead of inheriting the old one's results.
    const dir = join(deps.dataDir, namespace, job.metadata.name, job.metadata.uid ?? "");
    let dataset: LoadedDataset;
    let rows: SpooledRows;
    try {
      dataset = await deps.loadDataset(namespace, spec);
      rows = await SpooledRows.open(join(dir, "rows.jsonl"), () => dataset.rows);
    } catch (error) {
      throw new DatasetError(`dataset could not be loaded: ${error instanceof Error ? error.message : String(error)}`);
    }
    let token = (await deps.client.readSecret(namespace, tokenSecretName(job)))?.[TOKEN_KEY];
    if (!token) {
      token = randomBytes(24).toString("hex");
      await deps.client.createSecret(namespace, tokenSecret(job, token));
    }
    const tracker = new JobTracker({
      resultsPath: spec.results.type === "file" && spec.results.path ? spec.results.path : join(dir, "results.jsonl"),
      journalPath: join(dir, "journal.jsonl"),
      ...(job.metadata.uid ? { jobUid: job.metadata.uid } : {}),
      items: rows.count,
      backoffLimit: spec.backoffLimit,
      leaseTTLMs: workLeaseTTLMs(spec.limits),
    });
    const forwarder =
      spec.results.type === "atropos" && spec.results.url
        ? new ResultsForwarder({
            sink: new AtroposSink({
              url: spec.results.url,
              name: job.metadata.name,
              groupSize: spec.groupSize,
              maxTokenLength: spec.limits.maxTokenLength,
              dropUniformGroups: spec.results.dropUniformGroups,
              ...(deps.forwardRetryDelayMs ? { retryDelayMs: deps.forwardRetryDelayMs } : {}),
            }),
            resultsPath: tracker.resultsPath,
            forwardedPath: join(dir, "forwarded"),
            ...(deps.forwardRetryDelayMs ? { retryDelayMs: deps.forwardRetryDelayMs } : {}),
            onChange: () => deps.enqueue(key),
          })
        : undefined;
    forwarder?.start();
    const active: ActiveJob = {
      key,
      uid: job.metadata.uid ?? "",
      poolKey,
      token,
      spec,
      rows,
      environmentConfig: { ...dataset.environmentConfig, ...(spec.environment.config ?? {}) },
      tracker,
      forwarder,
      suspended: spec.suspend,
      poolGone: false,
      slotLeases: new Set(await deps.restoredSlotLeases(poolKey, key)),
      onProgress: () => deps.enqueue(key),
    };
    deps.active.set(active);
    return active;
  }

  /** A deleted job: stop its runners, give back its slots (also leases restored from before a restart), drop its token. */
  async function finalize(key: string, job: RolloutJob, pods: readonly V1Pod[]): Promise<ReconcileResult> {
    const namespace = job.metadata.namespace ?? "default";
    await stopWork(retire(key), pods, namespace);
    const poolKey = `${namespace}/${job.spec.poolRef?.name}`;
    const pool = deps.runtimes.get(poolKey);
    for (const leaseId of await deps.restoredSlotLeases(poolKey, key)) await pool?.slots.release(leaseId);
    await deps.client.deleteSecret(namespace, tokenSecretName(job));
    const finalizers = job.metadata.finalizers ?? [];
    await deps.client.setFinalizers(
      { kind: "RolloutJob", namespace, name: job.metadata.name },
      finalizers.filter((f) => f !== JOB_FINALIZER),
    );
    return {};
  }

  return async function reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = "default", name = key] = key.split("/");
    const job = deps.getJob(namespace, name);
    if (!job) {
      // Deleted: its pods and token go by owner reference; its slots come back now.
      const gone = retire(key);
      if (gone) await stopWork(gone, [], namespace);
      return {};
    }
    const now = new Date(deps.clock.now());
    const generation = job.metadata.generation ?? 0;
    const pods = deps.listRunnerPods(namespace, name);
    if (job.metadata.deletionTimestamp) return (job.metadata.finalizers ?? []).includes(JOB_FINALIZER) ? finalize(key, job, pods) : {};
    const writeStatus = async (state: JobState, active: ActiveJob | undefined) => {
      const status = computeJobStatus({
        generation,
        previous: job.status,
        state,
        aggregates: active?.tracker.aggregates(),
        pods,
        resultsLocation: active?.forwarder?.location ?? active?.tracker.resultsPath,
        now,
      });
      if (!isDeepStrictEqual(status, job.status)) await deps.client.patchStatus({ kind: "RolloutJob", namespace, name }, status);
      return status;
    };

    if (terminal(job)) {
      await stopWork(retire(key), pods, namespace);
      const ttl = job.spec.ttlSecondsAfterFinished;
      const finishedAt = Date.parse(job.status?.completionTime ?? "");
      if (ttl === undefined || Number.isNaN(finishedAt)) return {};
      const left = finishedAt + ttl * 1000 - now.getTime();
      if (left > 0) return { requeueAfterMs: left };
      await deps.client.deleteObject({ kind: "RolloutJob", namespace, name });
      return {};
    }

    const validation = validateRolloutJobSpec(job.spec);
    if (!validation.ok) {
      if (!findCondition(job.status?.conditions, "Failed"))
        deps.recorder.event(job, "Warning", "InvalidSpec", validation.errors.join("; "));
      await writeStatus({ kind: "invalid", errors: validation.errors }, undefined);
      return {};
    }
    const spec = validation.value;
    const poolKey = `${namespace}/${spec.poolRef.name}`;
    const pool = deps.getPool(namespace, spec.poolRef.name);
    const blocker = poolBlocker(
      spec.poolRef.name,
      pool && {
        deleting: Boolean(pool.metadata.deletionTimestamp),
        ready: isTrue(pool.status?.conditions, "Ready") && deps.runtimes.get(poolKey) !== undefined,
        readyReason: findCondition(pool.status?.conditions, "Ready")?.reason,
      },
      job.status?.startTime !== undefined,
    );
    if (blocker) {
      const current = deps.active.get(key);
      if (current && blocker.reason === "PoolDeleted") {
        // Runners stop and hand their items back; the slots went with the pool.
        if (!current.poolGone) deps.recorder.event(job, "Warning", "PoolDeleted", blocker.message);
        current.poolGone = true;
        await stopWork(current, pods, namespace);
      }
      await writeStatus({ kind: "poolNotReady", reason: blocker.reason, message: blocker.message }, current);
      return { requeueAfterMs: 2000 };
    }

    if (!(job.metadata.finalizers ?? []).includes(JOB_FINALIZER)) {
      await deps.client.setFinalizers({ kind: "RolloutJob", namespace, name }, [...(job.metadata.finalizers ?? []), JOB_FINALIZER]);
    }
    let active: ActiveJob;
    try {
      active = await activate(key, job, spec, poolKey, pods);
    } catch (error) {
      if (!(error instanceof DatasetError)) throw error;
      if (findCondition(job.status?.conditions, "Running")?.reason !== "DatasetError")
        deps.recorder.event(job, "Warning", "DatasetError", error.message);
      await writeStatus({ kind: "datasetError", message: error.message }, undefined);
      // A missing ConfigMap or an unreachable URL may be fixed without touching the job: try again later.
      return { requeueAfterMs: 15_000 };
    }
    active.suspended = spec.suspend;
    active.poolGone = false;
    active.spec = spec;
    if (spec.suspend) {
      await stopWork(active, pods, namespace);
      await writeStatus({ kind: "suspended" }, active);
      return {};
    }
    if (active.tracker.finished && active.forwarder && active.forwarder.pending > 0) {
      // Every item is scored; the job completes once the trainer has every group (forwarding retries meanwhile).
      await stopWork(active, pods, namespace);
      const { pending, location, lastError } = active.forwarder;
      await writeStatus({ kind: "forwarding", pending, location, lastError }, active);
      return { requeueAfterMs: 2000 };
    }
    if (active.tracker.finished) {
      await stopWork(active, pods, namespace);
      const status = await writeStatus({ kind: "finished" }, active);
      deps.recorder.event(
        job,
        status.phase === "Failed" ? "Warning" : "Normal",
        status.phase === "Failed" ? "JobFailed" : "JobComplete",
        status.progressSummary ?? "",
      );
      return spec.ttlSecondsAfterFinished !== undefined ? { requeueAfterMs: spec.ttlSecondsAfterFinished * 1000 } : {};
    }

    // Runner pods: one per index; a pod that ended while work remains is replaced.
    const byIndex = new Map(pods.map((p) => [Number(p.metadata?.labels?.[RUNNER_INDEX_LABEL]), p]));
    for (let index = 0; index < spec.runners.replicas; index++) {
      const pod = byIndex.get(index);
      if (pod && (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") && !pod.metadata?.deletionTimestamp) {
        await deps.client.deletePod(namespace, pod.metadata!.name!);
      } else if (!pod) {
        await deps.client.createPod(namespace, runnerPod(job, spec, index, deps.runnerPods));
        deps.recorder.event(job, "Normal", "RunnerCreated", `created runner pod ${index}`);
      }
    }
    for (const [index, pod] of byIndex)
      if (index >= spec.runners.replicas && !pod.metadata?.deletionTimestamp) await deps.client.deletePod(namespace, pod.metadata!.name!);
    await writeStatus({ kind: "running" }, active);
    return { requeueAfterMs: 5000 };
  };
}
