import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { PoolManager } from "../../../src/backends/slots/manager.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";

const template: SandboxTemplate = {
  pool: "ns/images",
  image: "pool-image",
  slots: 2,
  cpu: 1,
  memoryMiB: 256,
  lifetimeSeconds: 0,
  idleTimeoutSeconds: 600,
  templateHash: "v1",
};

async function openPool(backend: LocalBackend, store: InMemoryLeaseStore) {
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 60_000, store });
  await slotPool.start();
  const manager = new PoolManager({ backend, slotPool, min: 0, max: 2, intervalMs: 100, scaleDownDelayMs: 60_000 });
  manager.start();
  return { slotPool, manager };
}

test("local backend: acquires for two images get sandboxes of their own image, which list rebuilds after a restart", async () => {
  const root = await mkdtemp(join(tmpdir(), "images-pool-"));
  const backend = await LocalBackend.open({ rootDir: root });
  // Kept across the restart, as the controller's lease records are: slots without a record come back free at once.
  const store = new InMemoryLeaseStore();
  let { slotPool, manager } = await openPool(backend, store);
  try {
    const [a, b] = await Promise.all([
      slotPool.acquire("job", { timeoutMs: 60_000, image: "swe-a" }),
      slotPool.acquire("job", { timeoutMs: 60_000, image: "swe-b" }),
    ]);
    assert.deepEqual([a.image, b.image], ["swe-a", "swe-b"]);
    assert.notEqual(a.sandbox.name, b.sandbox.name);
    const listed = new Map((await backend.list(template.pool)).map((info) => [info.name, info]));
    assert.equal(listed.get(a.sandbox.name)?.image, "swe-a");
    assert.equal(listed.get(b.sandbox.name)?.image, "swe-b");
    assert.equal(listed.get(a.sandbox.name)?.templateHash, slotPool.templateFor("swe-a").templateHash);
    assert.notEqual(slotPool.templateFor("swe-a").templateHash, slotPool.templateFor("swe-b").templateHash);
    assert.equal((await slotPool.exec(a.id, { command: "echo ok", timeoutMs: 10_000 })).stdout.trim(), "ok");
    await Promise.all([slotPool.release(a.id), slotPool.release(b.id)]);

    // A controller restart: a new pool over the same backend finds each sandbox's image in the listing.
    await manager.stop();
    slotPool.close();
    ({ slotPool, manager } = await openPool(backend, store));
    await manager.reconcile();
    const again = await slotPool.acquire("job", { timeoutMs: 60_000, image: "swe-b" });
    assert.deepEqual([again.sandbox.name, again.image], [b.sandbox.name, "swe-b"]);
    assert.equal((await backend.list(template.pool)).length, 2, "no sandbox created: the image's sandbox was found");
    await slotPool.release(again.id);
  } finally {
    await manager.stop(true);
    slotPool.close();
    await backend.close();
    await rm(root, { recursive: true, force: true });
  }
});
