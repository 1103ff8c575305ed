import { PoolManager } from "../../src/backends/slots/manager.ts";
import { SlotPool } from "../../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxTemplate } from "../../src/backends/types.ts";

export interface ImageStartSamples {
  /** A group's first commands on an image that has no sandbox yet: the pool creates one for it first. */
  coldMs: number[];
  /** The same on an image whose sandbox is warm (the group before it ran there and gave its slots back). */
  warmMs: number[];
}

/**
 * A group's first command, warm image sandbox vs cold: per round, a group of `groupSize` trajectories on a new image
 * (the pool, stepped by its manager, creates that image's sandbox on demand), then a second group on the same image.
 * A group has started when each of its trajectories has acquired a slot (with the group as placement key) and run
 * its first command there. `images(round)` names each round's image.
 */
export async function measureImageStarts(
  backend: SandboxBackend,
  template: SandboxTemplate,
  options: { groupSize: number; rounds: number; images: (round: number) => string },
): Promise<ImageStartSamples> {
  const slotPool = new SlotPool({ backend, template: { ...template, slots: options.groupSize }, leaseTtlMs: 60_000 });
  await slotPool.start();
  const manager = new PoolManager({ backend, slotPool, min: 0, max: options.rounds, intervalMs: 1000, scaleDownDelayMs: 600_000 });
  manager.start();
  const groupStart = async (image: string, group: string): Promise<number> => {
    const started = performance.now();
    const leases = await Promise.all(
      Array.from({ length: options.groupSize }, async (_, index) => {
        const lease = await slotPool.acquire(`${group}-${index}`, { timeoutMs: 120_000, image, group });
        const result = await slotPool.exec(lease.id, { command: "true", timeoutMs: 30_000 });
        if (result.exitCode !== 0) throw new Error(`first command on ${image}: exit ${result.exitCode}: ${result.stderr}`);
        return lease;
      }),
    );
    const ms = performance.now() - started;
    if (new Set(leases.map((lease) => lease.sandbox.name)).size !== 1) throw new Error(`group ${group} was split over sandboxes`);
    await Promise.all(leases.map((lease) => slotPool.release(lease.id)));
    return ms;
  };
  const samples: ImageStartSamples = { coldMs: [], warmMs: [] };
  try {
    for (let round = 0; round < options.rounds; round++) {
      const image = options.images(round);
      samples.coldMs.push(await groupStart(image, `cold-${round}`));
      samples.warmMs.push(await groupStart(image, `warm-${round}`));
    }
  } finally {
    await manager.stop(true);
    slotPool.close();
  }
  return samples;
}
