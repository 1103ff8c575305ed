import type { V1Pod } from "@kubernetes/client-node";
import type { JobPhase, RolloutJobStatus } from "../../api/index.ts";
import { setConditions, type ConditionInput } from "../runtime/conditions.ts";
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
  reason: "PoolNotFound" | "PoolDeleted" | "PoolNotReady";
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
      reason: "PoolDeleted",
      message:
        `SandboxPool ${poolName} was deleted while the job ran; ` +
        "its items wait (no attempt spent) until a pool of that name is Ready again",
    };
  }
  if (!pool) return { reason: "PoolNotFound", message: `SandboxPool ${poolName} does not exist` };
  // A pool starting sandboxes under a started job is scaling up for its runners' demand: the job keeps running.
  const scaling = jobStarted && pool.readyReason === "SandboxesStarting";
  if (!pool.ready && !scaling)
    return { reason: "PoolNotReady", message: `SandboxPool ${poolName} is not Ready (${pool.readyReason ?? "no status yet"})` };
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

function jobConditions(input: JobStatusInput, phase: JobPhase): ConditionInput[] {
  const agg = input.aggregates;
  const progress = agg ? `${agg.groups}/${agg.items} items scored, ${agg.failed} failed` : "";
  switch (input.state.kind) {
    case "invalid": {
      const message = input.state.errors.join("; ");
      return [
        { type: "Failed", status: "True", reason: "InvalidSpec", message },
        { type: "Running", status: "False", reason: "InvalidSpec", message: "fix the spec and recreate the job" },
      ];
    }
    case "poolNotReady":
      return [{ type: "Running", status: "False", reason: input.state.reason, message: input.state.message }];
    case "datasetError":
      return [{ type: "Running", status: "False", reason: "DatasetError", message: input.state.message }];
    case "suspended":
      return [
        { type: "Suspended", status: "True", reason: "JobSuspended", message: `runners stopped; ${progress}` },
        { type: "Running", status: "False", reason: "JobSuspended", message: "" },
      ];
    case "running":
      return [
        { type: "Running", status: "True", reason: "RunnersActive", message: progress },
        { type: "Suspended", status: "False", reason: "NotSuspended", message: "" },
      ];
    case "forwarding": {
      const failing = input.state.lastError ? `; last attempt: ${input.state.lastError}` : "";
      return [
        {
          type: "Running",
          status: "True",
          reason: "ForwardingResults",
          message: `${progress}; ${input.state.pending} group(s) still to send to ${input.state.location}${failing}`,
        },
        { type: "Suspended", status: "False", reason: "NotSuspended", message: "" },
      ];
    }
    case "finished":
      return [
        phase === "Failed"
          ? {
              type: "Failed",
              status: "True",
              reason: "BackoffLimitExceeded",
              message: `${agg?.failed ?? 0} item(s) failed after backoffLimit attempts; ${progress}`,
            }
          : { type: "Complete", status: "True", reason: "AllItemsScored", message: progress },
        { type: "Running", status: "False", reason: phase === "Failed" ? "JobFailed" : "JobComplete", message: "" },
      ];
  }
}
