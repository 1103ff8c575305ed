import type { V1Pod } from "@kubernetes/client-node";
import {
  JobCondition,
  JobEvent,
  JobReason,
  validateRolloutJobSpec,
  type JobEventReason,
  type RolloutJob,
  type RolloutJobSpec,
  type RolloutJobStatus,
} from "../../api/index.ts";
import { findCondition, isTrue } from "../runtime/conditions.ts";
import type { EventType } from "../runtime/events.ts";
import { JOB_FINALIZER, RUNNER_INDEX_LABEL, tokenSecretName } from "./desired.ts";
import { computeJobStatus, poolBlocker, type JobState, type PoolBlocker } from "./status.ts";
import type { JobAggregates } from "./tracker.ts";

/** The job's work in memory (items, results, forwarding) as the pass found it. */
export interface WorkSnapshot {
  aggregates: JobAggregates;
  finished: boolean;
  /** With `results.type: atropos` only: how far the trainer has the stored groups. */
  forwarding: { pending: number; location: string; lastError: string | undefined } | undefined;
  resultsLocation: string;
  poolGone: boolean;
}

/** The job's pool as the job sees it: Ready only once its runtime (backend, slots) is up in this controller too. */
export interface PoolFacts {
  deleting: boolean;
  ready: boolean;
  readyReason: string | undefined;
}

/** What one pass read (caches, the pool runtime, the job's work in memory), as plain data. */
export interface JobObservation {
  /** undefined: the job is gone from the cache. */
  job: RolloutJob | undefined;
  pods: readonly V1Pod[];
  /** undefined: no pool of the job's poolRef in the cache. */
  pool: PoolFacts | undefined;
  /** Loaded when the job can run; otherwise what an earlier pass loaded, if anything. */
  work: WorkSnapshot | undefined;
  /** Why a runnable job's work could not be loaded (its dataset); then `work` is undefined. */
  datasetError: string | undefined;
  /** Work of an earlier job of the same name (another uid) was in memory: its runners and slots go. */
  replacedEarlierJob: boolean;
  /** A runner token the job's Secret does not hold yet. */
  tokenToStore: string | undefined;
}

export type JobAction =
  | { kind: "setFinalizers"; finalizers: string[] }
  | { kind: "createTokenSecret"; token: string }
  | { kind: "createPod"; index: number; spec: RolloutJobSpec }
  | { kind: "deletePod"; name: string }
  /** Keeps what the runners' API serves current: the spec (suspend) and whether the pool is gone. */
  | { kind: "updateWork"; poolGone: boolean; spec?: RolloutJobSpec }
  /** Hands items back (no attempt spent) and releases slot leases: of this job, or of the earlier one of its name. */
  | { kind: "releaseWork"; of: "current" | "earlier" }
  /** The runners' API forgets the job; its forwarder stops. */
  | { kind: "retire" }
  /** Slot leases the job held before a controller restart. */
  | { kind: "releaseRestoredLeases"; poolKey: string }
  | { kind: "deleteSecret"; name: string }
  | { kind: "deleteJob" };

export interface JobEventToRecord {
  type: EventType;
  reason: JobEventReason;
  message: string;
}

export interface JobDecision {
  /** Applied in order. */
  actions: JobAction[];
  events: JobEventToRecord[];
  /** The status this pass aims at, before its creates' outcome is folded in; undefined: no status write. */
  status?: RolloutJobStatus;
  requeueAfterMs?: number;
}

/** Where a job stands before its work is looked at: observe loads the work of a runnable job only. */
export type JobGate =
  | { kind: "deleting" }
  | { kind: "terminal" }
  | { kind: "invalid"; errors: string[] }
  | { kind: "blocked"; spec: RolloutJobSpec; blocker: PoolBlocker }
  | { kind: "runnable"; spec: RolloutJobSpec };

export function gate(job: RolloutJob, pool: PoolFacts | undefined): JobGate {
  if (job.metadata.deletionTimestamp) return { kind: "deleting" };
  const conditions = job.status?.conditions;
  if (isTrue(conditions, JobCondition.Complete) || isTrue(conditions, JobCondition.Failed)) return { kind: "terminal" };
  const validation = validateRolloutJobSpec(job.spec);
  if (!validation.ok) return { kind: "invalid", errors: validation.errors };
  const spec = validation.value;
  const blocker = poolBlocker(spec.poolRef.name, pool, job.status?.startTime !== undefined);
  return blocker ? { kind: "blocked", spec, blocker } : { kind: "runnable", spec };
}

/** The pass as a pure function of what it observed and the time: the writes to make, the Events and the status. */
export function decide(observed: JobObservation, now: Date): JobDecision {
  const { job, work } = observed;
  // Deleted: its pods and token go by owner reference; its slots come back now.
  if (!job) return { actions: work ? [{ kind: "retire" }, { kind: "releaseWork", of: "current" }] : [], events: [] };
  const status = (state: JobState, from: WorkSnapshot | undefined) =>
    computeJobStatus({
      generation: job.metadata.generation ?? 0,
      previous: job.status,
      state,
      aggregates: from?.aggregates,
      pods: observed.pods,
      resultsLocation: from?.resultsLocation,
      now,
    });
  const state = gate(job, observed.pool);
  switch (state.kind) {
    case "deleting":
      return finalize(job, observed);
    case "terminal":
      return expire(job, observed, now);
    case "invalid": {
      const message = state.errors.join("; ");
      const events: JobEventToRecord[] = findCondition(job.status?.conditions, JobCondition.Failed)
        ? []
        : [{ type: "Warning", reason: JobEvent.InvalidSpec, message }];
      return { actions: [], events, status: status({ kind: "invalid", errors: state.errors }, undefined) };
    }
    case "blocked": {
      const { reason, message } = state.blocker;
      const waiting = { kind: "poolNotReady", reason, message } as const;
      if (!work || reason !== JobReason.PoolDeleted)
        return { actions: [], events: [], status: status(waiting, work), requeueAfterMs: 2000 };
      // Runners stop and hand their items back; the slots went with the pool.
      return {
        actions: [{ kind: "updateWork", poolGone: true }, ...stopWork(observed)],
        events: work.poolGone ? [] : [{ type: "Warning", reason: JobEvent.PoolDeleted, message }],
        status: status(waiting, handedBack(work)),
        requeueAfterMs: 2000,
      };
    }
    case "runnable":
      return run(job, state.spec, observed, status, now);
  }
}

function run(
  job: RolloutJob,
  spec: RolloutJobSpec,
  observed: JobObservation,
  status: (state: JobState, from: WorkSnapshot | undefined) => RolloutJobStatus,
  now: Date,
): JobDecision {
  const { work, pods } = observed;
  const actions: JobAction[] = [];
  const finalizers = job.metadata.finalizers ?? [];
  if (!finalizers.includes(JOB_FINALIZER)) actions.push({ kind: "setFinalizers", finalizers: [...finalizers, JOB_FINALIZER] });
  // The job was deleted and re-created under its name between two passes: the old one's work ends here.
  if (observed.replacedEarlierJob) actions.push(...stopRunners(pods), { kind: "releaseWork", of: "earlier" });
  if (!work) {
    const message = observed.datasetError ?? "the job's work is not loaded";
    const events: JobEventToRecord[] =
      findCondition(job.status?.conditions, JobCondition.Running)?.reason === JobReason.DatasetError
        ? []
        : [{ type: "Warning", reason: JobEvent.DatasetError, message }];
    // A missing ConfigMap or an unreachable URL may be fixed without touching the job: try again later.
    return { actions, events, status: status({ kind: "datasetError", message }, undefined), requeueAfterMs: 15_000 };
  }
  if (observed.tokenToStore !== undefined) actions.push({ kind: "createTokenSecret", token: observed.tokenToStore });
  actions.push({ kind: "updateWork", poolGone: false, spec });
  if (spec.suspend)
    return { actions: [...actions, ...stopWork(observed)], events: [], status: status({ kind: "suspended" }, handedBack(work)) };
  if (work.finished && work.forwarding && work.forwarding.pending > 0) {
    // Every item is scored; the job completes once the trainer has every group (forwarding retries meanwhile).
    return {
      actions: [...actions, ...finishWork(observed, now.getTime(), now).actions],
      events: [],
      status: status({ kind: "forwarding", ...work.forwarding }, handedBack(work)),
      requeueAfterMs: 2000,
    };
  }
  if (work.finished) {
    const finished = status({ kind: "finished" }, handedBack(work));
    const failed = finished.phase === "Failed";
    const event: JobEventToRecord = {
      type: failed ? "Warning" : "Normal",
      reason: failed ? JobEvent.JobFailed : JobEvent.JobComplete,
      message: finished.progressSummary ?? "",
    };
    const ending = finishWork(observed, Date.parse(finished.completionTime ?? ""), now);
    const requeueAfterMs = earliest(
      spec.ttlSecondsAfterFinished === undefined ? undefined : spec.ttlSecondsAfterFinished * 1000,
      ending.recheckAfterMs,
    );
    return {
      actions: [...actions, ...ending.actions],
      events: [event],
      status: finished,
      ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}),
    };
  }
  // Runner pods: one per index; a pod that ended while work remains is replaced.
  const byIndex = new Map(pods.map((p) => [Number(p.metadata?.labels?.[RUNNER_INDEX_LABEL]), p]));
  for (let index = 0; index < spec.runners.replicas; index++) {
    const pod = byIndex.get(index);
    if (pod && ended(pod) && !pod.metadata?.deletionTimestamp) {
      actions.push({ kind: "deletePod", name: pod.metadata!.name! });
    } else if (!pod) actions.push({ kind: "createPod", index, spec });
  }
  for (const [index, pod] of byIndex)
    if (index >= spec.runners.replicas && !pod.metadata?.deletionTimestamp) actions.push({ kind: "deletePod", name: pod.metadata!.name! });
  return { actions, events: [], status: status({ kind: "running" }, work), requeueAfterMs: 5000 };
}

/** A deleted job: its runners stop, its slots come back (also leases restored from before a restart), its token goes. */
function finalize(job: RolloutJob, observed: JobObservation): JobDecision {
  const finalizers = job.metadata.finalizers ?? [];
  if (!finalizers.includes(JOB_FINALIZER)) return { actions: [], events: [] };
  const namespace = job.metadata.namespace ?? "default";
  return {
    actions: [
      ...retire(observed),
      ...stopWork(observed),
      { kind: "releaseRestoredLeases", poolKey: `${namespace}/${job.spec.poolRef?.name}` },
      { kind: "deleteSecret", name: tokenSecretName(job) },
      { kind: "setFinalizers", finalizers: finalizers.filter((f) => f !== JOB_FINALIZER) },
    ],
    events: [],
  };
}

/** A Complete or Failed job: its work ends; it is deleted ttlSecondsAfterFinished after it finished. */
function expire(job: RolloutJob, observed: JobObservation, now: Date): JobDecision {
  const finishedAt = Date.parse(job.status?.completionTime ?? "");
  const ending = finishWork(observed, finishedAt, now);
  // The work stays served while a runner is in its grace, so its next call is told "done" (not "retry").
  const actions = [...(ending.recheckAfterMs === undefined ? retire(observed) : []), ...ending.actions];
  const ttl = job.spec.ttlSecondsAfterFinished;
  const left = ttl === undefined || Number.isNaN(finishedAt) ? undefined : finishedAt + ttl * 1000 - now.getTime();
  if (left !== undefined && left <= 0) return { actions: [...actions, { kind: "deleteJob" }], events: [] };
  const requeueAfterMs = earliest(left, ending.recheckAfterMs);
  return { actions, events: [], ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

const retire = (observed: JobObservation): JobAction[] => (observed.work ? [{ kind: "retire" }] : []);

const stopRunners = (pods: readonly V1Pod[]): JobAction[] =>
  pods.filter((p) => !p.metadata?.deletionTimestamp).map((p) => ({ kind: "deletePod", name: p.metadata!.name! }));

/** Runner pods go, then the job's items come back and its slot leases are released. */
const stopWork = (observed: JobObservation): JobAction[] => [...stopRunners(observed.pods), ...releaseWork(observed)];

const releaseWork = (observed: JobObservation): JobAction[] => (observed.work ? [{ kind: "releaseWork", of: "current" }] : []);

const ended = (pod: V1Pod) => pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";

/** How long a finished job's runners have to exit on their own (each is told "done" at its next call). */
export const RUNNER_EXIT_GRACE_MS = 30_000;

/**
 * A finished job's runners: those that ended stay, as a Kubernetes Job keeps its pods, so `kubectl logs` reads them
 * until the job is deleted (owner references take them then); one still running gets RUNNER_EXIT_GRACE_MS from
 * `finishedAt` to exit and is stopped after that. `recheckAfterMs` is when its grace ends.
 */
function finishWork(observed: JobObservation, finishedAt: number, now: Date): { actions: JobAction[]; recheckAfterMs?: number } {
  const running = observed.pods.filter((pod) => !ended(pod) && !pod.metadata?.deletionTimestamp);
  const graceLeft = finishedAt + RUNNER_EXIT_GRACE_MS - now.getTime();
  if (running.length === 0 || !(graceLeft > 0)) return { actions: [...stopRunners(running), ...releaseWork(observed)] };
  return { actions: releaseWork(observed), recheckAfterMs: graceLeft };
}

const earliest = (...delays: (number | undefined)[]): number | undefined => {
  const set = delays.filter((delay): delay is number => delay !== undefined);
  return set.length > 0 ? Math.min(...set) : undefined;
};

/** The work once its items are handed back: none is running. */
const handedBack = (work: WorkSnapshot): WorkSnapshot => ({ ...work, aggregates: { ...work.aggregates, running: 0 } });
