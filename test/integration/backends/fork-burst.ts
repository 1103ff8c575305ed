/**
 * The fork-burst attack of issue 11, shared by the suites that run it as root (setpriv) and as a non-root spawner
 * (a user namespace): slot 0 starts as many processes as the kernel lets it, up to a bound (so the old code, which
 * had no limit, is not brought down by the test), and holds them while slot 1 starts processes of its own.
 */
import { access, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ExecResult } from "../../../src/backends/types.ts";

/** Starts up to argv[1] `sleep`s, writes how many the kernel allowed to ./burst; with "hold", keeps them until ./stop. */
const BURST = String.raw`import os, subprocess, sys, time
started = 0
try:
    for _ in range(int(sys.argv[1])):
        subprocess.Popen(["sleep", "120"])
        started += 1
except OSError:
    pass
with open("burst.tmp", "w") as out:
    out.write(str(started))
os.rename("burst.tmp", "burst")
deadline = time.time() + 60
while sys.argv[2] == "hold" and not os.path.exists("stop") and time.time() < deadline:
    time.sleep(0.05)
`;

/** A slot command that starts up to `count` processes; ./burst then says how many it got. */
export const burstCommand = (count: number, hold: boolean) => `python3 -c '${BURST}' ${count} ${hold ? "hold" : "go"}`;

export interface BurstOutcome {
  /** How many processes slot 0's burst started. */
  attacker: number;
  /** How many slot 1 started while slot 0 held its burst. */
  victim: number;
}

export async function forkBurstAcrossSlots(options: {
  exec: (slot: number, command: string) => Promise<ExecResult>;
  /** The host path of slot 0's workspace, where its burst says how far it got and is told to stop. */
  attackerWorkspace: string;
  attackerTries: number;
  victimWants: number;
  /** More work to check while slot 0 holds its burst. */
  whileHeld?: () => Promise<void>;
}): Promise<BurstOutcome> {
  const attackerCommand = options.exec(0, burstCommand(options.attackerTries, true));
  try {
    await burstInPlace(join(options.attackerWorkspace, "burst"), attackerCommand);
    const victim = await options.exec(1, `${burstCommand(options.victimWants, false)} && cat burst`);
    if (victim.exitCode !== 0) throw new Error(`slot 1 could not run while slot 0 held its burst: ${victim.stderr}`);
    await options.whileHeld?.();
    const attacker = Number(await readFile(join(options.attackerWorkspace, "burst"), "utf8"));
    return { attacker, victim: Number(victim.stdout.trim()) };
  } finally {
    await writeFile(join(options.attackerWorkspace, "stop"), "");
    await attackerCommand;
  }
}

/** Waits until the attacker's burst is in place; if its command ends first, that is the answer. */
async function burstInPlace(path: string, command: Promise<ExecResult>): Promise<void> {
  let ended: ExecResult | undefined;
  void command.then((result) => (ended = result));
  for (const started = Date.now(); Date.now() - started < 60_000; await sleep(50)) {
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      return;
    if (ended !== undefined) throw new Error(`slot 0's burst ended before it was in place (${ended.exitCode}): ${ended.stderr}`);
  }
  throw new Error("slot 0's burst was not in place after 60 s");
}
