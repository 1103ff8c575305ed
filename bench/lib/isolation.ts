import { chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSlotCommand, cacheDirectory, probeIsolation, slotDirectory, slotFileOwner } from "../../src/backends/isolation.ts";
import { findCgroupPlace, SlotCgroups } from "../../src/backends/cgroups.ts";
import { startProcess } from "../../src/backends/process.ts";
import type { NetworkPolicy } from "../../src/backends/types.ts";

export interface IsolationSamples {
  /** A plain process (spec.isolation.mode none). */
  none: number[];
  /** bwrap with the sandbox's network (network: host). */
  bwrapHostNetwork: number[];
  /** bwrap with a network namespace of its own (network: none, the default). */
  bwrap: number[];
  /** The same in a slot cgroup with limits (joined through SlotCgroups.wrap, killed after): absent without cgroups. */
  bwrapCgroup: number[];
  /** bwrap under the egress policy (slirp4netns started per command). */
  bwrapEgress: number[];
}

/**
 * What isolation costs a tool call on this machine: `echo hello` spawned as a slot command without isolation, under
 * bwrap with the host's network and under bwrap with its own network namespace, interleaved so load drifts hit all
 * three alike. Straight through buildSlotCommand and startProcess, the same path SlotHost.exec takes.
 */
export async function measureIsolation(rounds: number): Promise<IsolationSamples> {
  const probe = await probeIsolation("bwrap");
  const root = await mkdtemp(join(tmpdir(), "hermes-bench-isolation-"));
  let cgroups: SlotCgroups | undefined;
  try {
    await mkdir(slotDirectory(root, 0), { recursive: true });
    await mkdir(cacheDirectory(root), { recursive: true });
    const owner = slotFileOwner("bwrap", probe.slotUser, 0);
    if (owner !== undefined) await chown(slotDirectory(root, 0), owner.uid, owner.gid);
    const place = findCgroupPlace();
    const limits = { memoryBytes: 1024 ** 3, pids: 512, cpuMillis: 1000 };
    cgroups = "unavailable" in place ? undefined : await SlotCgroups.create(place, `hermes-bench-${process.pid}`, 1, limits);
    const run = async (isolation: "none" | "bwrap", network: NetworkPolicy, inCgroup = false): Promise<number> => {
      const built = buildSlotCommand({ sandboxRoot: root, slot: 0, command: "echo hello", isolation, slotUser: probe.slotUser, network });
      const plan = inCgroup && cgroups !== undefined ? cgroups.wrap(built, 0) : built;
      const started = performance.now();
      const result = await startProcess(plan, { timeoutMs: 10_000 }).result;
      if (inCgroup) await cgroups?.kill(0); // as SlotHost.exec does after every command
      if (result.stdout !== "hello\n") throw new Error(`echo under ${isolation}/${network} failed: ${result.stderr}`);
      return performance.now() - started;
    };
    const samples: IsolationSamples = { none: [], bwrapHostNetwork: [], bwrap: [], bwrapCgroup: [], bwrapEgress: [] };
    for (let index = 0; index < 5; index++) await Promise.all([run("none", "host"), run("bwrap", "host"), run("bwrap", "none")]);
    for (let index = 0; index < rounds; index++) {
      samples.none.push(await run("none", "host"));
      samples.bwrapHostNetwork.push(await run("bwrap", "host"));
      samples.bwrap.push(await run("bwrap", "none"));
      if (cgroups !== undefined) samples.bwrapCgroup.push(await run("bwrap", "none", true));
      samples.bwrapEgress.push(await run("bwrap", "egress"));
    }
    return samples;
  } finally {
    await cgroups?.remove(1);
    await rm(root, { recursive: true, force: true });
  }
}
