import { readFile, writeFile } from "node:fs/promises";
import { errorMessage } from "../../base/errors.ts";

/** The autogroup nice of the session that starts local sandboxes: its weight is about 9x a slot command's session. */
export const CONTROL_PLANE_AUTOGROUP_NICE = -10;
const AUTOGROUP_SWITCH = "/proc/sys/kernel/sched_autogroup_enabled";
const OWN_AUTOGROUP = "/proc/self/autogroup";

/**
 * The process that leases, renews and scores outranks the slot work it starts. The sandbox servers (and so their
 * slot commands) run niced (server-process.ts), but with autogroup scheduling (kernel.sched_autogroup_enabled=1, a
 * process in the root cpu cgroup: a VM, a workstation, a CI host) the kernel shares the CPU between sessions first and
 * nice only orders the tasks of one session. Every slot command is a session of its own (spawn's setsid, bwrap's
 * --new-session, and a slot may call setsid), so 200 running commands were 200 groups as heavy as the controller's:
 * its event loop waited 44-52 ms (p99) at 200 clients on 2 cores, 3-4 ms with this session's group at nice -10
 * (bench:exec). Raising a group needs CAP_SYS_NICE; without it the answer says so and the host should turn autogroup
 * off (sysctl kernel.sched_autogroup_enabled=0), where the servers' nice holds as it does inside a pod's cgroup.
 * The whole session is raised (a terminal that runs `hermes-rollouts run` too): it is the control plane's.
 * Returns what could not be done, for the log; undefined when done or not needed.
 */
export async function outrankSlotSessions(): Promise<string | undefined> {
  const enabled = await readFile(AUTOGROUP_SWITCH, "utf8").catch(() => "0");
  if (enabled.trim() !== "1") return undefined;
  try {
    const current = /nice\s+(-?\d+)/.exec(await readFile(OWN_AUTOGROUP, "utf8"))?.[1];
    if (current !== undefined && Number(current) <= CONTROL_PLANE_AUTOGROUP_NICE) return undefined;
    await writeFile(OWN_AUTOGROUP, String(CONTROL_PLANE_AUTOGROUP_NICE));
    return undefined;
  } catch (error) {
    return (
      `could not raise this session's CPU weight above the slot commands' (${errorMessage(error)}): under load they may ` +
      "delay this process; run with CAP_SYS_NICE or set kernel.sched_autogroup_enabled=0"
    );
  }
}
