import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateRolloutJobSpec } from "../../../src/api/index.ts";
import { prewarmPool } from "../../../src/operator/rolloutjob/work.ts";
import { SpooledRows } from "../../../src/operator/rolloutjob/rows.ts";
import { fakePoolRuntime } from "./fakes.ts";

test("a job starting on a pool of this controller warms its most needed images there, from its rows' image histogram", async () => {
  const dir = await mkdtemp(join(tmpdir(), "prewarm-"));
  const { runtime } = await fakePoolRuntime(4, 1000);
  const rows = await SpooledRows.open(join(dir, "rows.jsonl"), () => ({
    rows: [{ image_name: "swe-a" }, { image_name: "swe-b" }, { image_name: "swe-a" }, { image_name: "swe-c" }, { image_name: "swe-a" }],
  }));
  const spec = validateRolloutJobSpec({
    poolRef: { name: "p" },
    environment: { name: "shell-task" },
    dataset: { jsonl: { path: "rows.jsonl" } },
    model: { builtin: { policy: "oracle" } },
    groupSize: 4,
  });
  assert.ok(spec.ok, JSON.stringify(spec));
  const kicked: string[] = [];
  runtime.warmCaps = { maxSandboxes: 2, minPerImage: 0 };
  try {
    await prewarmPool({ get: () => runtime, onWaiting: (pool) => void kicked.push(pool) }, "ns/p", rows, spec.value);
    // Two sandboxes in the pool: swe-a (3 items) and then swe-b (first among the images of one item each).
    assert.deepEqual(
      [...runtime.slots.images.warm(0)].map(([image, warm]) => [image, warm.sandboxes]),
      [
        ["swe-a", 1],
        ["swe-b", 1],
      ],
    );
    assert.deepEqual(kicked, ["ns/p"]);
  } finally {
    runtime.slots.close();
    await rows.close();
    await rm(dir, { recursive: true, force: true });
  }
});
