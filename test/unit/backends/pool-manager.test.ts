import { test } from "node:test";
import assert from "node:assert/strict";
import { PoolManager } from "../../../src/backends/slots/manager.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";
import { isSandboxError } from "../../../src/base/errors.ts";

const template: SandboxTemplate = {
  pool: "p",
  image: "i",
  slots: 1,
  cpu: 1,
  memoryMiB: 1,
  lifetimeSeconds: 0,
  idleTimeoutSeconds: 0,
  templateHash: "v1",
};

/** Lists nothing and records creates: what the manager decides is visible without any sandbox. */
function recordingBackend(created: string[]): SandboxBackend {
  const unused = async (): Promise<never> => {
    throw new Error("not used");
  };
  return {
    kind: "local",
    async create(name: string): Promise<SandboxInfo> {
      created.push(name);
      return { id: name, name, pool: "p", phase: "ready", slots: 1, templateHash: "v1", createdAt: new Date(0) };
    },
    list: async () => [],
    exec: unused,
    readFile: unused,
    writeFile: unused,
    resetSlot: unused,
    health: async () => ({ ok: true, isolation: "none" }),
    terminate: async () => undefined,
    close: async () => undefined,
  };
}

test("after stop, an acquirer that has to wait starts no pass (its creates would outlive stop's terminateAll)", async () => {
  const created: string[] = [];
  const backend = recordingBackend(created);
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 1000 });
  await slotPool.start(0);
  const manager = new PoolManager({ backend, slotPool, min: 1, max: 1 });
  await manager.stop(true);
  await assert.rejects(slotPool.acquire("late", { timeoutMs: 1 }), (error: unknown) => isSandboxError(error, "capacity"));
  await manager.stop(); // waits for a pass and creates the acquire may have started
  assert.deepEqual(created, []);
});
