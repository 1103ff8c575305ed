import { test } from "node:test";
import assert from "node:assert/strict";
import { ControllerMetrics } from "../../../src/operator/runtime/metrics.ts";
import { poolMetricsExporter } from "../../../src/operator/sandboxpool/metrics.ts";

test("pool gauges are labelled by image, bounded (the rest as other), and a gone image's series is removed", async () => {
  const metrics = new ControllerMetrics({ defaultMetrics: false });
  const exportPool = poolMetricsExporter(metrics);
  const series = async () => (await metrics.sandboxes.get()).values.map((v) => `${v.labels.phase} ${v.labels.image} ${v.value}`).sort();
  exportPool("ns/p", {
    sandboxes: { ready: 5, starting: 1, failed: 0, images: 3 },
    images: [
      { image: "swe-a", ready: 3, starting: 0, leased: 4 },
      { image: "swe-b", ready: 1, starting: 1, leased: 0 },
    ],
    slots: { total: 20, leased: 4, free: 16, quarantined: 0 },
  });
  assert.deepEqual(await series(), [
    "failed any 0",
    "ready other 1",
    "ready swe-a 3",
    "ready swe-b 1",
    "starting other 0",
    "starting swe-a 0",
    "starting swe-b 1",
  ]);
  exportPool("ns/p", {
    sandboxes: { ready: 1, starting: 0, failed: 0, images: 1 },
    images: [{ image: "swe-b", ready: 1, starting: 0, leased: 0 }],
  });
  assert.deepEqual(await series(), ["failed any 0", "ready swe-b 1", "starting swe-b 0"]);
});
