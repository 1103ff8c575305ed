import type { V1Pod } from "@kubernetes/client-node";
import {
  JobCondition,
  JobReason,
  PoolReason,
  type JobConditionReason,
  type JobConditionType,
  type JobPhase,
  type RolloutJobStatus,
} from "../../api/index.ts";
import { removeCondition, setCondition, setConditions, type ConditionInput } from "../runtime/conditions.ts";
import type { JobAggregates } from "./tracker.ts";

export type JobState =
  | { kind: "invalid"; errors: string[] }
  | { kind: "poolNotReady"; reason: PoolBlocker["reason"]; message: string }
  | { kind: "datasetError"; message: string }
  | { kind: "suspended" }
  | { kind: "running" }
  | { kind: "forwarding"; pending: number; location: string; lastError: string | undefined }
  | { kind: "finished" };

export interface JobStatusInput {
  generation: number;
  previous: RolloutJobStatus | undefined;
  state: JobState;
  aggregates: JobAggregates | undefined;
  pods: readonly V1Pod[];
  resultsLocation: string | undefined;
  now: Date;
}

export interface PoolBlocker {
  /** PoolDeleted: the pool went away under a started job (its runners stop, its items wait, no attempt spent). */
  reason: Extract<JobConditionReason, "PoolNotFound" | "PoolDeleted" | "PoolNotReady">;
  message: string;
}

/** Why a job cannot run on its pool now, or undefined when it can. */
export function poolBlocker(
  poolName: string,
  pool: { deleting: boolean; readyReason: string | undefined; ready: boolean } | undefined,
  jobStarted: boolean,
): PoolBlocker | undefined {
  if (pool?.deleting || (!pool && jobStarted)) {
    return {
      reason: JobReason.PoolDeleted,
      message:
        `SandboxPool ${poolName} was deleted while the job ran; ` +
        "its items wait (no attempt spent) until a pool of that name is Ready again",
    };
  }
  if (!pool) return { reason: JobReason.PoolNotFound, message: `SandboxPool ${poolName} does not exist` };
  // A pool starting sandboxes under a started job is scaling up for its runners' demand: the job keeps running.
  const scaling = jobStarted && pool.readyReason === PoolReason.SandboxesStarting;
  if (!pool.ready && !scaling)
    return { reason: JobReason.PoolNotReady, message: `SandboxPool ${poolName} is not Ready (${pool.readyReason ?? "no status yet"})` };
  return undefined;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

/** The job's status as a pure function: bounded aggregates, never one entry per item. */
export function computeJobStatus(input: JobStatusInput): RolloutJobStatus {
  const { aggregates: agg, previous, now } = input;
  const terminal = input.state.kind === "finished" || input.state.kind === "invalid";
  const failedItems = agg?.failed ?? 0;
  const phase: JobPhase =
    input.state.kind === "invalid" || (input.state.kind === "finished" && failedItems > 0)
      ? "Failed"
      : input.state.kind === "finished"
        ? "Complete"
        : input.state.kind === "suspended"
          ? "Suspended"
          : input.state.kind === "running" || input.state.kind === "forwarding"
            ? "Running"
            : "Pending";
  const status: RolloutJobStatus = {
    observedGeneration: input.generation,
    conditions: setConditions(previous?.conditions, jobConditions(input, phase), input.generation, now),
    phase,
  };
  const startTime = previous?.startTime ?? (input.state.kind === "running" ? now.toISOString() : undefined);
  if (startTime) status.startTime = startTime;
  if (terminal) status.completionTime = previous?.completionTime ?? now.toISOString();
  if (agg) {
    status.progress = {
      items: agg.items,
      groups: agg.groups,
      scored: agg.scored,
      failed: agg.failed,
      retried: agg.retried,
      running: agg.running,
      heldBack: agg.heldBack,
      filtered: agg.filtered,
    };
    status.progressSummary = `${agg.groups + agg.failed}/${agg.items}`;
    if (agg.scored > 0) {
      status.passRate = round(agg.passed / agg.scored);
      status.scoreMean = round(agg.scoreSum / agg.scored);
    }
    // Omitted while empty: the 1.20 apiserver turns a patched "" into null and rejects it.
    if (agg.completedIndexes) status.completedIndexes = agg.completedIndexes;
  }
  if (input.resultsLocation) status.resultsLocation = input.resultsLocation;
  const podPhase = (p: V1Pod) => p.status?.phase;
  status.runners = {
    active: input.pods.filter((p) => podPhase(p) === "Running" || podPhase(p) === "Pending").length,
    succeeded: input.pods.filter((p) => podPhase(p) === "Succeeded").length,
    failed: input.pods.filter((p) => podPhase(p) === "Failed").length,
  };
  return status;
}

type JobConditionInput = ConditionInput<JobConditionType, JobConditionReason>;

function jobConditions(input: JobStatusInput, phase: JobPhase): JobConditionInput[] {
  const agg = input.aggregates;
  const progress = agg ? `${agg.groups}/${agg.items} items scored, ${agg.failed} failed` : "";
  switch (input.state.kind) {
    case "invalid": {
      const message = input.state.errors.join("; ");
      return [
        { type: JobCondition.Failed, status: "True", reason: JobReason.InvalidSpec, message },
        { type: JobCondition.Running, status: "False", reason: JobReason.InvalidSpec, message: "fix the spec and recreate the job" },
      ];
    }
    case "poolNotReady":
      return [{ type: JobCondition.Running, status: "False", reason: input.state.reason, message: input.state.message }];
    case "datasetError":
      return [{ type: JobCondition.Running, status: "False", reason: JobReason.DatasetError, message: input.state.message }];
    case "suspended":
      return [
        { type: JobCondition.Suspended, status: "True", reason: JobReason.JobSuspended, message: `runners stopped; ${progress}` },
        { type: JobCondition.Running, status: "False", reason: JobReason.JobSuspended, message: "" },
      ];
    case "running":
      return [
        { type: JobCondition.Running, status: "True", reason: JobReason.RunnersActive, message: progress },
        { type: JobCondition.Suspended, status: "False", reason: JobReason.NotSuspended, message: "" },
      ];
    case "forwarding": {
      const failing = input.state.lastError ? `; last attempt: ${input.state.lastError}` : "";
      return [
        {
          type: JobCondition.Running,
          status: "True",
          reason: JobReason.ForwardingResults,
          message: `${progress}; ${input.state.pending} group(s) still to send to ${input.state.location}${failing}`,
        },
        { type: JobCondition.Suspended, status: "False", reason: JobReason.NotSuspended, message: "" },
      ];
    }
    case "finished":
      return [
        phase === "Failed"
          ? {
              type: JobCondition.Failed,
              status: "True",
              reason: JobReason.BackoffLimitExceeded,
              message: `${agg?.failed ?? 0} item(s) failed after backoffLimit attempts; ${progress}`,
            }
          : { type: JobCondition.Complete, status: "True", reason: JobReason.AllItemsScored, message: progress },
        {
          type: JobCondition.Running,
          status: "False",
          reason: phase === "Failed" ? JobReason.JobFailed : JobReason.JobComplete,
          message: "",
        },
      ];
  }
}

export type CreateFailureReason = Extract<JobConditionReason, "PodCreateFailed" | "SecretCreateFailed">;

/** What a pass's creates (the token Secret, runner pods) came to: the first one the apiserver refused, if any. */
export interface CreateOutcome {
  attempted: boolean;
  refused?: { reason: CreateFailureReason; message: string };
}

/**
 * Folds a pass's creates into its status, as KubeRay's ReplicaFailure: True while a create is refused, removed once
 * a create succeeds, and left as it was by a pass that created nothing.
 */
export function withCreateOutcome(status: RolloutJobStatus, outcome: CreateOutcome, now: Date): RolloutJobStatus {
  if (!outcome.attempted) return status;
  const conditions = outcome.refused
    ? setCondition(
        status.conditions,
        { type: JobCondition.ReplicaFailure, status: "True", reason: outcome.refused.reason, message: outcome.refused.message },
        status.observedGeneration ?? 0,
        now,
      )
    : removeCondition(status.conditions, JobCondition.ReplicaFailure);
  return { ...status, conditions };
}
