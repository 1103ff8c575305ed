import type { SandboxPoolStatus } from "../../api/index.ts";
import type { ControllerMetrics } from "../runtime/metrics.ts";

type PoolGauges = Pick<ControllerMetrics, "sandboxes" | "slots">;

/**
 * Exports a pool's status as gauges: sandboxes by phase and image (the images status lists, at most STATUS_IMAGES,
 * and `other` for the rest, so the label stays bounded however many images a pool serves), slots by state. Label
 * sets a pool no longer has are removed, so a gone image does not linger at its last value.
 */
export function poolMetricsExporter(gauges: PoolGauges) {
  const exported = new Map<string, Set<string>>();
  return function exportPool(pool: string, status: SandboxPoolStatus): void {
    const labels = new Map<string, { pool: string; phase: string; image: string }>();
    const set = (phase: string, image: string, value: number) => {
      const key = JSON.stringify([phase, image]);
      labels.set(key, { pool, phase, image });
      gauges.sandboxes.set({ pool, phase, image }, value);
    };
    const listed = status.images ?? [];
    for (const entry of listed) {
      set("ready", entry.image, entry.ready);
      set("starting", entry.image, entry.starting);
    }
    const sum = (phase: "ready" | "starting") => listed.reduce((total, entry) => total + entry[phase], 0);
    if ((status.sandboxes?.images ?? 0) > listed.length) {
      set("ready", "other", (status.sandboxes?.ready ?? 0) - sum("ready"));
      set("starting", "other", (status.sandboxes?.starting ?? 0) - sum("starting"));
    }
    set("failed", "any", status.sandboxes?.failed ?? 0);
    for (const key of exported.get(pool) ?? []) {
      if (labels.has(key)) continue;
      const [phase, image] = JSON.parse(key) as [string, string];
      gauges.sandboxes.remove({ pool, phase, image });
    }
    exported.set(pool, new Set(labels.keys()));
    for (const state of ["leased", "free", "quarantined"] as const) gauges.slots.set({ pool, state }, status.slots?.[state] ?? 0);
  };
}
