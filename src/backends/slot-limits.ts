/** A slot's cgroup limits; an absent one is not set (the sandbox's own limits still bound all slots together). */
export interface SlotResourceLimits {
  memoryBytes?: number | undefined;
  pids?: number | undefined;
  /** CPU time per second of wall time, in thousandths of a core (1000 = one core). */
  cpuMillis?: number | undefined;
}

/**
 * A pool's per-slot limits as the sandbox server applies them: memory, processes and CPU through a cgroup per slot
 * (cgroups.ts), the workspace's size through a loop-mounted image (local/workspace-volume.ts). Enforced where the
 * sandbox can ("auto"): a limit this host cannot set is named in the sandbox's health, which the pool's Isolated
 * condition shows; the pool stays Ready (only isolation itself fails closed).
 */
export interface SlotLimits extends SlotResourceLimits {
  workspaceBytes?: number | undefined;
}

/** The sandbox server's flags for these limits (the local backend, Nomad jobs and pods start it with them). */
export function slotLimitArgs(limits: SlotLimits | undefined): string[] {
  if (limits === undefined) return [];
  const flags: [string, number | undefined][] = [
    ["--slot-memory", limits.memoryBytes],
    ["--slot-pids", limits.pids],
    ["--slot-cpu", limits.cpuMillis],
    ["--slot-workspace", limits.workspaceBytes],
  ];
  return flags.flatMap(([flag, value]) => (value === undefined ? [] : [flag, String(Math.floor(value))]));
}
