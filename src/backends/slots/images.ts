import type { Clock } from "../../base/clock.ts";
import type { WarmImage } from "./plan.ts";

/** How long an image counts as recently used: its warm sandboxes (minSandboxesPerImage, a job's pre-warm) stay that long. */
export const RECENT_IMAGE_MS = 10 * 60_000;

/**
 * Which images a job's items name and how often (its image histogram) to sandboxes to warm before the first acquire:
 * the most needed images first, each with the sandboxes one group needs (ceil(groupSize / slotsPerSandbox), at
 * least `minPerImage`), until `maxSandboxes` are spoken for. Ties: the image named first in the histogram.
 */
export function prewarmImages(
  histogram: ReadonlyMap<string, number>,
  caps: { maxSandboxes: number; slotsPerSandbox: number; groupSize: number; minPerImage: number },
): Map<string, number> {
  const perImage = Math.max(caps.minPerImage, Math.ceil(caps.groupSize / Math.max(1, caps.slotsPerSandbox)), 1);
  const ranked = [...histogram].filter(([, items]) => items > 0).sort((a, b) => b[1] - a[1]);
  const warm = new Map<string, number>();
  let left = caps.maxSandboxes;
  for (const [image] of ranked) {
    if (left <= 0) break;
    warm.set(image, Math.min(perImage, left));
    left -= perImage;
  }
  return warm;
}

/** When each image was last asked for, and what a job pre-warmed: the planner's warm floors and LRU order. */
export class ImageUsage {
  readonly #clock: Clock;
  readonly #lastUsed = new Map<string, number>();
  #prewarmed = new Map<string, number>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  used(image: string): void {
    this.#lastUsed.set(image, this.#clock.now());
  }

  /**
   * Images a job will ask for, with the sandboxes to warm for each (prewarmImages): they count as used now, so they
   * stay warm (within maxSandboxes) until used or RECENT_IMAGE_MS passes.
   */
  prewarm(sandboxesByImage: ReadonlyMap<string, number>): void {
    const now = this.#clock.now();
    this.#prewarmed = new Map(sandboxesByImage);
    for (const image of sandboxesByImage.keys()) this.#lastUsed.set(image, Math.max(now, this.#lastUsed.get(image) ?? now));
  }

  /** Images used (or pre-warmed) within RECENT_IMAGE_MS, each with `minPerImage` sandboxes (more if pre-warmed). */
  warm(minPerImage: number): Map<string, WarmImage> {
    const now = this.#clock.now();
    const warm = new Map<string, WarmImage>();
    for (const [image, lastUsedAt] of this.#lastUsed) {
      if (now - lastUsedAt > RECENT_IMAGE_MS) {
        this.#lastUsed.delete(image);
        this.#prewarmed.delete(image);
      } else {
        warm.set(image, { sandboxes: Math.max(minPerImage, this.#prewarmed.get(image) ?? 0), lastUsedAt });
      }
    }
    return warm;
  }
}
