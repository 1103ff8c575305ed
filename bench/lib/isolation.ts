import { chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSlotCommand, cacheDirectory, probeIsolation, slotDirectory, slotFileOwner } from "../../src/backends/isolation.ts";
import { startProcess } from "../../src/backends/process.ts";
import type { NetworkPolicy } from "../../src/backends/types.ts";

export interface IsolationSamples {
  /** A plain process (spec.isolation.mode none). */
  none: number[];
  /** bwrap with the sandbox's network (network: host). */
  bwrapHostNetwork: number[];
  /** bwrap with a network namespace of its own (network: none, the default). */
  bwrap: number[];
}

/**
 * What isolation costs a tool call on this machine: `echo hello` spawned as a slot command without isolation, under
 * bwrap with the host's network and under bwrap with its own network namespace, interleaved so load drifts hit all
 * three alike. Straight through buildSlotCommand and startProcess, the same path SlotHost.exec takes.
 */
export async function measureIsolation(rounds: number): Promise<IsolationSamples> {
  const probe = await probeIsolation("bwrap");
  const root = await mkdtemp(join(tmpdir(), "hermes-bench-isolation-"));
  try {
    await mkdir(slotDirectory(root, 0), { recursive: true });
    await mkdir(cacheDirectory(root), { recursive: true });
    const owner = slotFileOwner("bwrap", probe.slotUser, 0);
    if (owner !== undefined) await chown(slotDirectory(root, 0), owner.uid, owner.gid);
    const run = async (isolation: "none" | "bwrap", network: NetworkPolicy): Promise<number> => {
      const plan = buildSlotCommand({ sandboxRoot: root, slot: 0, command: "echo hello", isolation, slotUser: probe.slotUser, network });
      const started = performance.now();
      const result = await startProcess(plan, { timeoutMs: 10_000 }).result;
      if (result.stdout !== "hello\n") throw new Error(`echo under ${isolation}/${network} failed: ${result.stderr}`);
      return performance.now() - started;
    };
    const samples: IsolationSamples = { none: [], bwrapHostNetwork: [], bwrap: [] };
    for (let index = 0; index < 5; index++) await Promise.all([run("none", "host"), run("bwrap", "host"), run("bwrap", "none")]);
    for (let index = 0; index < rounds; index++) {
      samples.none.push(await run("none", "host"));
      samples.bwrapHostNetwork.push(await run("bwrap", "host"));
      samples.bwrap.push(await run("bwrap", "none"));
    }
    return samples;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
