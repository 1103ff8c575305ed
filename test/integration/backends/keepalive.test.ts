import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { PoolManager } from "../../../src/backends/slots/manager.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { FakeClock } from "../../../src/base/clock.ts";

const settle = () => new Promise((resolve) => setTimeout(resolve, 50)); // lets the background probes land

test("a warm sandbox outlives its backend's idle timeout while the pool lives, and goes once nothing probes it", async () => {
  const root = await mkdtemp(join(tmpdir(), "keepalive-"));
  const clock = new FakeClock(Date.parse("2026-01-01T00:00:00Z"));
  const backend = await LocalBackend.open({ rootDir: root, clock });
  const template: SandboxTemplate = {
    pool: "ns/warm",
    image: "host",
    slots: 2,
    cpu: 1,
    memoryMiB: 256,
    lifetimeSeconds: 0,
    idleTimeoutSeconds: 30,
    templateHash: "v1",
  };
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 60_000, clock });
  await slotPool.start(0);
  const manager = new PoolManager({ backend, slotPool, min: 1, max: 1, clock });
  try {
    while ((await backend.list(template.pool)).length === 0) {
      await manager.reconcile();
      await settle();
    }
    const [warm] = await backend.list(template.pool);
    for (let step = 0; step < 12; step++) {
      // 108 s of the fake clock: more than three idle timeouts
      clock.advance(9_000);
      await manager.reconcile();
      await settle();
    }
    assert.deepEqual(
      (await backend.list(template.pool)).map((s) => [s.name, s.phase]),
      [[warm!.name, "ready"]],
      "the same sandbox, never replaced",
    );

    await manager.stop();
    clock.advance(31_000);
    assert.deepEqual(await backend.list(template.pool), [], "the backend's safety net still ends what nobody keeps");
  } finally {
    slotPool.close();
    await backend.close();
    await rm(root, { recursive: true, force: true });
  }
});
