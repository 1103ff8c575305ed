import type { SandboxPhase } from "../types.ts";
import { PORT_LABEL, TASK_NAME } from "./job.ts";
import type { AllocationStub, Evaluation } from "./schemas.ts";

/** Pure helpers over allocation stubs: where a sandbox listens and what state Nomad says it is in. */

/** `http://HostIP:Value` of the labelled port, from `Shared.Ports`, else the older `Shared.Networks`. */
export function allocationAddress(alloc: AllocationStub, label = PORT_LABEL): string | undefined {
  const shared = alloc.AllocatedResources?.Shared;
  const port = shared?.Ports?.find((p) => p.Label === label);
  if (port !== undefined && port.HostIP !== "") return httpUrl(port.HostIP, port.Value);
  for (const network of shared?.Networks ?? []) {
    const found = [...(network.DynamicPorts ?? []), ...(network.ReservedPorts ?? [])].find((p) => p.Label === label);
    if (found !== undefined && network.IP !== "") return httpUrl(network.IP, found.Value);
  }
  return undefined;
}

function httpUrl(ip: string, port: number): string {
  return ip.includes(":") ? `http://[${ip}]:${port}` : `http://${ip}:${port}`;
}

/** Nomad wants this allocation to run and it has not reached a terminal client status. */
export function isLive(alloc: AllocationStub): boolean {
  return alloc.DesiredStatus === "run" && (alloc.ClientStatus === "pending" || alloc.ClientStatus === "running");
}

/** The job's current allocation: the newest live one, else the newest of all (to explain a failure). */
export function currentAllocation(allocs: readonly AllocationStub[]): AllocationStub | undefined {
  const newestFirst = [...allocs].sort((a, b) => b.CreateIndex - a.CreateIndex);
  return newestFirst.find(isLive) ?? newestFirst[0];
}

export function taskRestarts(alloc: AllocationStub, task = TASK_NAME): number {
  return alloc.TaskStates?.[task]?.Restarts ?? 0;
}

/**
 * An incarnation of a sandbox: one allocation and one run of its task. A reschedule changes the allocation
 * (and port); an in-place restart keeps both but bumps Restarts. Either way the slots' state is gone.
 */
export function incarnationOf(alloc: AllocationStub): string {
  return `${alloc.ID}#${taskRestarts(alloc)}`;
}

/**
 * Why the driver could not start a task of the allocation (the server, or a docker pool's inject task), if it could
 * not since that task last started: any "Driver Failure" event (or one carrying DriverError), not only the last
 * one, since the client's task runner appends "Restarting" or "Not Restarting" after it
 * (client/allocrunner/taskrunner/task_runner.go). Nomad may retry a Driver Failure under the restart policy; the
 * pool does not wait for that, it replaces the sandbox. Another task's failure is prefixed with its name.
 */
export function driverFailure(alloc: AllocationStub): string | undefined {
  for (const [task, state] of Object.entries(alloc.TaskStates ?? {})) {
    const events = state.Events ?? [];
    const sinceStart = events.slice(events.findLastIndex((event) => event.Type === "Started") + 1);
    const failure = sinceStart.findLast((event) => event.Type === "Driver Failure" || event.DriverError !== "");
    if (failure === undefined) continue;
    return `${task === TASK_NAME ? "" : `task ${task}: `}${failure.Type}: ${failure.DisplayMessage || failure.DriverError}`;
  }
  return undefined;
}

/** The scheduler's reason for placing nothing, from the newest evaluation with `FailedTGAllocs`. */
export interface PlacementFailure {
  message: string;
  /** Every node was filtered out (a missing driver, a constraint, no node in the datacenters): waiting will not help. */
  permanent: boolean;
}

export function placementFailure(evaluations: readonly Evaluation[]): PlacementFailure | undefined {
  const failed = [...evaluations].sort((a, b) => b.CreateIndex - a.CreateIndex).find((e) => Object.keys(e.FailedTGAllocs ?? {}).length > 0);
  if (failed === undefined) return undefined;
  const [group, metric] = Object.entries(failed.FailedTGAllocs!)[0]!;
  const reasons = [metric.ConstraintFiltered, metric.ClassFiltered, metric.DimensionExhausted].flatMap((counts) =>
    Object.entries(counts ?? {}).map(([reason, nodes]) => `${reason} (${nodes})`),
  );
  const nodes = `${metric.NodesFiltered} of ${metric.NodesEvaluated} nodes filtered, ${metric.NodesExhausted} exhausted`;
  const why = [nodes, ...(reasons.length > 0 ? [reasons.join(", ")] : [])].join(": ");
  return {
    message: `evaluation ${failed.ID.slice(0, 8)} FailedTGAllocs: group "${group}" not placed: ${why}`,
    permanent: metric.NodesEvaluated === 0 || metric.NodesFiltered >= metric.NodesEvaluated,
  };
}

/**
 * Phase as far as Nomad can tell; "ready" still needs the sandbox server's own /health. A failed allocation is
 * failed for the pool (the restart policy already retried in place, and the pool's replacement is cheaper
 * than waiting out reschedule delays); a lost one gets a replacement from Nomad and is still starting.
 */
export function schedulerPhase(
  job: { Stop: boolean; Status: string },
  alloc: AllocationStub | undefined,
  placement?: PlacementFailure,
): { phase: SandboxPhase; message?: string } {
  if (job.Stop) return { phase: "terminated", message: "job stopped" };
  if (alloc === undefined) {
    if (placement === undefined) return { phase: "starting", message: "no allocation placed yet" };
    return { phase: placement.permanent ? "failed" : "starting", message: placement.message };
  }
  const failure = driverFailure(alloc);
  if (failure !== undefined) return { phase: "failed", message: `allocation ${alloc.ID.slice(0, 8)} ${alloc.ClientStatus}: ${failure}` };
  if (isLive(alloc)) {
    if (alloc.ClientStatus === "running" && alloc.TaskStates?.[TASK_NAME]?.State === "running") return { phase: "ready" };
    return { phase: "starting", message: `allocation ${alloc.ID.slice(0, 8)} ${alloc.ClientStatus}` };
  }
  // The task that failed tells why (an inject task that exited non-zero; the server then only shows "Killing").
  const [task, state] = Object.entries(alloc.TaskStates ?? {}).find(([, s]) => s.Failed) ?? [TASK_NAME, alloc.TaskStates?.[TASK_NAME]];
  const lastEvent = state?.Events?.at(-1);
  const prefix = task === TASK_NAME ? "" : `task ${task}: `;
  const detail =
    lastEvent === undefined ? "" : `: ${prefix}${lastEvent.Type}${lastEvent.DisplayMessage ? `: ${lastEvent.DisplayMessage}` : ""}`;
  const message = `allocation ${alloc.ID.slice(0, 8)} ${alloc.ClientStatus}${detail}`;
  if (job.Status === "dead" || alloc.ClientStatus === "failed") return { phase: "failed", message };
  return { phase: "starting", message };
}
