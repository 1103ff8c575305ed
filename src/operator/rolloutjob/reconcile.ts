import { isDeepStrictEqual } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { JobEvent, JobReason, PoolCondition, type RolloutJob, type SandboxPool } from "../../api/index.ts";
import type { ClusterClient, ObjectRef } from "../client.ts";
import type { ActiveJob } from "../runners-api/registry.ts";
import { findCondition, isTrue } from "../runtime/conditions.ts";
import type { ReconcileResult } from "../runtime/controller.ts";
import type { Recorder } from "../runtime/events.ts";
import { decide, gate, type JobAction, type JobObservation, type PoolFacts } from "./decide.ts";
import { runnerPod, tokenSecret, type RunnerPodSettings } from "./desired.ts";
import { withCreateOutcome, type CreateFailureReason, type CreateOutcome } from "./status.ts";
import { loadWork, releaseWork, retireWork, snapshotWork, type WorkDeps } from "./work.ts";
import { DatasetError, describeError, errorMessage } from "../../base/errors.ts";
import type { Clock } from "../../base/clock.ts";

export interface JobReconcilerDeps extends WorkDeps {
  getJob: (namespace: string, name: string) => RolloutJob | undefined;
  getPool: (namespace: string, name: string) => SandboxPool | undefined;
  listRunnerPods: (namespace: string, jobName: string) => readonly V1Pod[];
  client: ClusterClient;
  recorder: Recorder;
  runnerPods: RunnerPodSettings;
  clock: Clock;
}

/** The job's work in memory, for apply: decide sees only its snapshot. */
interface WorkHandles {
  current?: ActiveJob;
  /** Work of an earlier job of the same name, dropped from the runners' API by observe. */
  earlier?: ActiveJob;
}

/** The apiserver's own words for a refused write (its Status message), else the error's message. */
function refusal(error: unknown): string {
  const body = (error as { body?: unknown } | null)?.body;
  try {
    const status = typeof body === "string" ? (JSON.parse(body) as unknown) : body;
    const message = (status as { message?: unknown } | undefined)?.message;
    if (typeof message === "string" && message) return message;
  } catch {
    // Not a Status object: the error's own message says what happened.
  }
  return errorMessage(error);
}

/**
 * observe (caches, pool runtime, the job's work in memory) → decide (pure: actions, Events, status) → apply the
 * actions → one status write, only when the status changed. A refused create becomes the ReplicaFailure condition.
 */
export function jobReconciler(deps: JobReconcilerDeps) {
  async function observe(key: string, namespace: string, name: string): Promise<{ observed: JobObservation; handles: WorkHandles }> {
    const job = deps.getJob(namespace, name);
    const current = deps.active.get(key);
    const pods = job ? deps.listRunnerPods(namespace, name) : [];
    const pool = job && poolFacts(namespace, job.spec.poolRef?.name);
    const seen = { job, pods, pool, datasetError: undefined, replacedEarlierJob: false, tokenToStore: undefined };
    const state = job && gate(job, pool);
    if (!job || state?.kind !== "runnable") return { observed: { ...seen, work: current && snapshotWork(current) }, handles: { current } };
    const observed: JobObservation = { ...seen, work: undefined };
    let work = current;
    let earlier: ActiveJob | undefined;
    if (current && current.uid !== (job.metadata.uid ?? "")) {
      // Deleted and re-created under its name: the earlier job's work is no longer served (apply releases it).
      earlier = current;
      retireWork(deps.active, key);
      work = undefined;
    }
    if (!work) {
      try {
        const loaded = await loadWork(deps, key, job, state.spec);
        work = loaded.work;
        if (!loaded.tokenStored) observed.tokenToStore = work.token;
      } catch (error) {
        if (!(error instanceof DatasetError)) throw error;
        observed.datasetError = describeError(error);
      }
    }
    observed.work = work && snapshotWork(work);
    observed.replacedEarlierJob = earlier !== undefined;
    return { observed, handles: { current: work, earlier } };
  }

  function poolFacts(namespace: string, poolName: string | undefined): PoolFacts | undefined {
    const pool = poolName === undefined ? undefined : deps.getPool(namespace, poolName);
    if (!pool) return undefined;
    return {
      deleting: Boolean(pool.metadata.deletionTimestamp),
      ready: isTrue(pool.status?.conditions, PoolCondition.Ready) && deps.runtimes.get(`${namespace}/${poolName}`) !== undefined,
      readyReason: findCondition(pool.status?.conditions, PoolCondition.Ready)?.reason,
    };
  }

  /**
   * Makes the decision's writes in order. A refused create is recorded (Event, outcome) and the creates after it wait
   * for the next pass, as they would be refused alike (quota, admission); any other failed write ends the pass.
   */
  async function apply(
    key: string,
    ref: ObjectRef,
    job: RolloutJob | undefined,
    actions: readonly JobAction[],
    handles: WorkHandles,
  ): Promise<{ outcome: CreateOutcome; error?: unknown }> {
    const namespace = ref.namespace;
    const outcome: CreateOutcome = { attempted: false };
    let error: unknown;
    /** Runs one create unless an earlier one was refused; a refusal is an outcome and a Warning, not a thrown error. */
    const create = async (reason: CreateFailureReason, what: string, write: () => Promise<void>) => {
      if (outcome.refused) return;
      outcome.attempted = true;
      try {
        await write();
      } catch (refused) {
        error = refused;
        outcome.refused = { reason, message: `${what}: ${refusal(refused)}` };
        deps.recorder.event(job!, "Warning", JobEvent[reason], outcome.refused.message);
      }
    };
    for (const action of actions) {
      switch (action.kind) {
        case "setFinalizers":
          await deps.client.setFinalizers(ref, action.finalizers);
          break;
        case "createTokenSecret":
          await create(JobReason.SecretCreateFailed, "token Secret", async () => {
            await deps.client.createSecret(namespace, tokenSecret(job!, action.token));
          });
          // Not served without its stored token: the next pass loads the job again and reads the Secret afresh.
          if (outcome.refused) retireWork(deps.active, key);
          break;
        case "createPod":
          await create(JobReason.PodCreateFailed, `runner pod ${action.index}`, async () => {
            await deps.client.createPod(namespace, runnerPod(job!, action.spec, action.index, deps.runnerPods));
            deps.recorder.event(job!, "Normal", JobEvent.RunnerCreated, `created runner pod ${action.index}`);
          });
          break;
        case "deletePod":
          await deps.client.deletePod(namespace, action.name);
          break;
        case "updateWork":
          if (!handles.current) break;
          handles.current.poolGone = action.poolGone;
          if (action.spec) {
            handles.current.spec = action.spec;
            handles.current.suspended = action.spec.suspend;
          }
          break;
        case "releaseWork": {
          const work = handles[action.of];
          if (work) await releaseWork(work, deps.runtimes);
          break;
        }
        case "retire":
          retireWork(deps.active, key);
          break;
        case "releaseRestoredLeases": {
          const pool = deps.runtimes.get(action.poolKey);
          for (const leaseId of await deps.restoredSlotLeases(action.poolKey, key)) await pool?.slots.release(leaseId);
          break;
        }
        case "deleteSecret":
          await deps.client.deleteSecret(namespace, action.name);
          break;
        case "deleteJob":
          await deps.client.deleteObject(ref);
          break;
      }
    }
    return { outcome, error };
  }

  return async function reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = "default", name = key] = key.split("/");
    const ref: ObjectRef = { kind: "RolloutJob", namespace, name };
    const now = new Date(deps.clock.now());
    const { observed, handles } = await observe(key, namespace, name);
    const decision = decide(observed, now);
    const job = observed.job;
    if (job) for (const event of decision.events) deps.recorder.event(job, event.type, event.reason, event.message);
    const { outcome, error } = await apply(key, ref, job, decision.actions, handles);
    // The one status write of the pass, after every other write, and only when something changed.
    if (job && decision.status) {
      const status = withCreateOutcome(decision.status, outcome, now);
      if (!isDeepStrictEqual(status, job.status)) await deps.client.patchStatus(ref, status);
    }
    // A refused create is retried with the queue's backoff, as any failed reconcile.
    if (error !== undefined) throw error;
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : {};
  };
}
