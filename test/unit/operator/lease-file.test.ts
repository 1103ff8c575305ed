import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FileLeaseStore } from "../../../src/operator/sandboxpool/lease-file.ts";

const record = (index: number) => ({ id: `l${index}`, holder: `h${index}`, sandboxId: "s", sandboxName: "s", slot: index, expiresAt: 1 });

test("concurrent changes each resolve with themselves on disk, and a new store restores them all", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hermes-lease-file-"));
  try {
    const store = new FileLeaseStore(dir);
    const file = join(dir, "leases", "ns_pool.json");
    await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        await store.put("ns/pool", record(index));
        const onDisk = JSON.parse(await readFile(file, "utf8")) as { id: string }[];
        assert.ok(
          onDisk.some((r) => r.id === `l${index}`),
          `l${index} resolved before it was written`,
        );
      }),
    );
    await Promise.all(Array.from({ length: 100 }, (_, index) => store.remove("ns/pool", `l${index * 2}`)));
    const restored = await new FileLeaseStore(dir).load("ns/pool");
    assert.deepEqual(restored?.map((r) => r.id).sort(), Array.from({ length: 100 }, (_, index) => `l${index * 2 + 1}`).sort());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
