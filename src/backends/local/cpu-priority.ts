import { readFile, writeFile } from "node:fs/promises";
import { errorMessage } from "../../base/errors.ts";

/** The autogroup nice of the session that starts local sandboxes: its weight is about 9x a slot command's session. */
export const CONTROL_PLANE_AUTOGROUP_NICE = -10;
const AUTOGROUP_SWITCH = "/proc/sys/kernel/sched_autogroup_enabled";

export interface SlotWorkPriority {
  /** This process's session now outweighs each slot command's; false where it could not or should not be raised. */
  outranked: boolean;
  /** Why not, when autogroup scheduling is on and the session was left as it was. */
  reason?: string;
}

/**
 * The process that leases, renews and scores outranks the slot work it starts. The sandbox servers (and so their
 * slot commands) run niced (server-process.ts), but with autogroup scheduling (kernel.sched_autogroup_enabled=1, a
 * process in the root cpu cgroup: a VM, a workstation, a CI host) the kernel shares the CPU between sessions first and
 * nice only orders the tasks of one session. Every slot command is a session of its own (bwrap's --new-session, and a
 * slot may call setsid), so 200 running commands were 200 groups as heavy as the controller's: its event loop waited
 * 35-52 ms (p99) at 200 clients on 2 cores, 3-10 ms with its session's group at nice -10 (bench:exec).
 * Only a session this process leads is raised (a service, a container's entrypoint, `setsid hermes-rollouts ...`),
 * never a terminal's or a test runner's it merely joined. Raising needs CAP_SYS_NICE; without it the host should turn
 * autogroup off (sysctl kernel.sched_autogroup_enabled=0), where the servers' nice holds, as it does in a pod's cgroup.
 */
export async function outrankSlotSessions(): Promise<SlotWorkPriority> {
  const enabled = await readFile(AUTOGROUP_SWITCH, "utf8").catch(() => "0");
  if (enabled.trim() !== "1") return { outranked: false };
  try {
    // /proc/self/stat: the fields after the parenthesised name (which may hold spaces) are state ppid pgrp session.
    const stat = await readFile("/proc/self/stat", "utf8");
    const session = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
    if (session !== process.pid)
      return { outranked: false, reason: "this process does not lead its session (start it with setsid to raise it)" };
    const current = /nice\s+(-?\d+)/.exec(await readFile("/proc/self/autogroup", "utf8"))?.[1];
    if (current === undefined || Number(current) > CONTROL_PLANE_AUTOGROUP_NICE)
      await writeFile("/proc/self/autogroup", String(CONTROL_PLANE_AUTOGROUP_NICE));
    return { outranked: true };
  } catch (error) {
    return { outranked: false, reason: `could not raise this session's CPU weight (${errorMessage(error)}): CAP_SYS_NICE is needed` };
  }
}
