/**
 * The exec-model question of issue 17 ("a slot's namespaces can live as long as its lease: measure and choose"),
 * measured from one process on `slots` slots, each looping `true` for `ms`:
 *   - perCommand: what the sandbox server does, one bwrap (new namespaces, prlimit, setpriv) per command;
 *   - perSlot: one bwrap per slot, made once, whose shell runs each command it reads on stdin as a child and then
 *     kills whatever the command left behind (`kill -KILL -1`: every process of the slot's pid namespace but itself).
 * perSlot is a lower bound of that design's cost: it returns only the exit status (outputs go to /dev/null; the
 * real one would frame stdout and stderr back), sets no per-command env, cwd or stdin, and times nothing out.
 */
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { createInterface } from "node:readline";
import { buildSlotCommand, cacheDirectory, slotDirectory, type SlotUser } from "../../src/backends/isolation.ts";
import { startProcess } from "../../src/backends/process.ts";

const LOOP = 'while IFS= read -r command; do bash -c "$command" </dev/null >/dev/null 2>&1; echo "$?"; kill -KILL -1 2>/dev/null; done';

export interface NamespaceModels {
  execPerSecondPerCommand: number;
  execPerSecondPerSlot: number;
  p99MsPerCommand: number;
  p99MsPerSlot: number;
}

async function loop(slots: number, ms: number, exec: (slot: number) => Promise<void>): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: slots }, async (_, slot) => {
      while (performance.now() - started < ms) {
        const begun = performance.now();
        await exec(slot);
        latencies.push(performance.now() - begun);
      }
    }),
  );
  return { perSecond: latencies.length / ((performance.now() - started) / 1000), latencies };
}

export async function compareNamespaceModels(
  root: string,
  slotUser: SlotUser,
  slots: number,
  ms: number,
  p99: (samples: number[]) => number,
): Promise<NamespaceModels> {
  await mkdir(cacheDirectory(root), { recursive: true });
  for (let slot = 0; slot < slots; slot++) await mkdir(slotDirectory(root, slot), { recursive: true });
  const plan = (slot: number, command: readonly string[]) =>
    buildSlotCommand({ sandboxRoot: root, slot, command, isolation: "bwrap", slotUser, network: "none" });

  const perCommand = await loop(slots, ms, async (slot) => {
    const result = await startProcess(plan(slot, ["true"]), { timeoutMs: 60_000 }).result;
    if (result.exitCode !== 0) throw new Error(`per-command bwrap: exit ${result.exitCode}: ${result.stderr}`);
  });

  const shells = Array.from({ length: slots }, (_, slot) => {
    const { file, args, cwd, env } = plan(slot, ["bash", "-c", LOOP]);
    const child = spawn(file, args, { cwd, env, stdio: ["pipe", "pipe", "inherit"] });
    return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator]() };
  });
  try {
    const perSlot = await loop(slots, ms, async (slot) => {
      const shell = shells[slot]!;
      shell.child.stdin.write("true\n");
      const status = await shell.lines.next();
      if (status.value !== "0") throw new Error(`per-slot bwrap: status ${String(status.value)}`);
    });
    return {
      execPerSecondPerCommand: Number(perCommand.perSecond.toFixed(1)),
      execPerSecondPerSlot: Number(perSlot.perSecond.toFixed(1)),
      p99MsPerCommand: Number(p99(perCommand.latencies).toFixed(2)),
      p99MsPerSlot: Number(p99(perSlot.latencies).toFixed(2)),
    };
  } finally {
    for (const { child } of shells) child.kill("SIGKILL");
  }
}
