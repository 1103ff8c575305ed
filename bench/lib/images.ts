import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PoolManager } from "../../src/backends/slots/manager.ts";
import { SlotPool } from "../../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxTemplate } from "../../src/backends/types.ts";
import { buildTestImage } from "../../test/support/oci-images.ts";

/** Per group: when its first command returned, and when every trajectory's had (the whole group started). */
export interface GroupStart {
  firstMs: number;
  allMs: number;
}

export interface ImageStartSamples {
  /** Groups on an image that has no sandbox yet: the pool creates one for it first. */
  cold: GroupStart[];
  /** Groups on an image whose sandbox is warm (the group before it ran there and gave its slots back). */
  warm: GroupStart[];
}

/**
 * A group's first command, warm image sandbox vs cold: per round, a group of `groupSize` trajectories on a new image
 * (the pool, stepped by its manager, creates that image's sandbox on demand), then a second group on the same image.
 * Each trajectory acquires a slot (with the group as placement key) and runs its first command there; a group's
 * first command is the earliest to return. One round per image of `images`.
 */
export async function measureImageStarts(
  backend: SandboxBackend,
  template: SandboxTemplate,
  options: { groupSize: number; images: readonly string[] },
): Promise<ImageStartSamples> {
  const slotPool = new SlotPool({ backend, template: { ...template, slots: options.groupSize }, leaseTtlMs: 60_000 });
  await slotPool.start();
  const manager = new PoolManager({ backend, slotPool, min: 0, max: options.images.length, intervalMs: 1000, scaleDownDelayMs: 600_000 });
  manager.start();
  const groupStart = async (image: string, group: string): Promise<GroupStart> => {
    const started = performance.now();
    let firstMs = Infinity;
    const leases = await Promise.all(
      Array.from({ length: options.groupSize }, async (_, index) => {
        const lease = await slotPool.acquire(`${group}-${index}`, { timeoutMs: 120_000, image, group });
        const result = await slotPool.exec(lease.id, { command: ["true"], timeoutMs: 30_000 });
        if (result.exitCode !== 0) throw new Error(`first command on ${image}: exit ${result.exitCode}: ${result.stderr}`);
        firstMs = Math.min(firstMs, performance.now() - started);
        return lease;
      }),
    );
    const allMs = performance.now() - started;
    if (new Set(leases.map((lease) => lease.sandbox.name)).size !== 1) throw new Error(`group ${group} was split over sandboxes`);
    await Promise.all(leases.map((lease) => slotPool.release(lease.id)));
    return { firstMs, allMs };
  };
  const samples: ImageStartSamples = { cold: [], warm: [] };
  try {
    for (const [round, image] of options.images.entries()) {
      samples.cold.push(await groupStart(image, `cold-${round}`));
      samples.warm.push(await groupStart(image, `warm-${round}`));
    }
  } finally {
    await manager.stop(true);
    slotPool.close();
  }
  return samples;
}

/**
 * `count` distinct OCI images (busybox, a file of their own, and `payloadMiB` of random text standing in for an
 * environment's packages), built offline into a temporary layout.
 */
export async function benchImages(count: number, payloadMiB: number): Promise<string[]> {
  const layout = join(await mkdtemp(join(tmpdir(), "hermes-bench-images-")), "layout");
  const images: string[] = [];
  for (let index = 0; index < count; index++) {
    const files = { "/etc/which": `bench-${index}\n`, "/opt/env/payload": randomBytes((payloadMiB * 2 ** 20 * 3) / 4).toString("base64") };
    images.push(await buildTestImage(layout, `bench-${index}`, { files, workingDir: "/work" }));
  }
  return images;
}
