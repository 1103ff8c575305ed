import type { SandboxPhase } from "../types.ts";
import { PORT_LABEL, TASK_NAME } from "./job.ts";
import type { AllocationStub } from "./schemas.ts";

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

/** Phase as far as Nomad can tell; "ready" still needs the sandbox server's own /health. */
export function schedulerPhase(
  jobStopped: boolean,
  jobStatus: string,
  alloc: AllocationStub | undefined,
): { phase: SandboxPhase; message?: string } {
  if (jobStopped) return { phase: "terminated", message: "job stopped" };
  if (alloc === undefined) return { phase: "starting", message: "no allocation placed yet" };
  if (isLive(alloc)) {
    if (alloc.ClientStatus === "running" && alloc.TaskStates?.[TASK_NAME]?.State === "running") return { phase: "ready" };
    return { phase: "starting", message: `allocation ${alloc.ID.slice(0, 8)} ${alloc.ClientStatus}` };
  }
  const lastEvent = alloc.TaskStates?.[TASK_NAME]?.Events?.at(-1);
  const detail = lastEvent?.DisplayMessage ? `: ${lastEvent.DisplayMessage}` : "";
  const message = `allocation ${alloc.ID.slice(0, 8)} ${alloc.ClientStatus}${detail}`;
  // A driver that cannot start the task will not do better on the next allocation; a dead job gets none.
  if (jobStatus === "dead" || lastEvent?.Type === "Driver Failure") return { phase: "failed", message };
  // Otherwise a failed or lost allocation gets a replacement (the reschedule policy is unlimited).
  return { phase: "starting", message };
}
