/**
 * The embedded pool: a backend built from a SandboxPool spec, a SlotPool over it and the PoolManager loop that
 * creates and replaces its sandboxes. `close()` terminates every sandbox the run created.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxPoolSpec } from "../api/index.ts";
import { LocalBackend } from "../backends/local/backend.ts";
import { PoolManager } from "../backends/slots/manager.ts";
import { SlotPool } from "../backends/slots/pool.ts";
import type { SandboxBackend } from "../backends/types.ts";
import { poolTemplate } from "../controller/sandboxpool/plan.ts";
import { slotPoolProvider } from "./slot-provider.ts";
import type { SlotProvider } from "./types.ts";

export interface EmbeddedPool {
  backend: SandboxBackend;
  slots: SlotProvider;
  slotPool: SlotPool;
  manager: PoolManager;
  /** Slots the pool can lease at once (maxSandboxes × slotsPerSandbox). */
  capacity: number;
  close(): Promise<void>;
}

/** Builds the backend a pool names. Modal and Nomad are loaded only when used. */
export async function createBackend(spec: SandboxPoolSpec): Promise<{ backend: SandboxBackend; cleanup: () => Promise<void> }> {
  if (spec.backend === "local") {
    const owned = spec.local?.rootDir === undefined;
    const rootDir = spec.local?.rootDir ?? (await mkdtemp(join(tmpdir(), "hermes-run-")));
    return { backend: await LocalBackend.open({ rootDir }), cleanup: async () => (owned ? rm(rootDir, { recursive: true, force: true }) : undefined) };
  }
  throw new Error(`backend ${spec.backend} is not available in hermes-rollouts run yet`);
}

export async function startEmbeddedPool(poolName: string, spec: SandboxPoolSpec): Promise<EmbeddedPool> {
  const { backend, cleanup } = await createBackend(spec);
  const template = poolTemplate(poolName, spec);
  const leaseTtlMs = spec.leaseTTLSeconds * 1000;
  const slotPool = new SlotPool({ backend, template, leaseTtlMs });
  await slotPool.start();
  const manager = new PoolManager({
    backend,
    slotPool,
    min: spec.minSandboxes,
    max: spec.maxSandboxes,
    maxConcurrentCreates: spec.maxConcurrentCreates,
    intervalMs: 500,
  });
  manager.start();
  return {
    backend,
    slotPool,
    manager,
    slots: slotPoolProvider(slotPool, { acquireTimeoutMs: spec.acquireTimeoutSeconds * 1000, leaseTtlMs }),
    capacity: spec.maxSandboxes * spec.slotsPerSandbox,
    async close() {
      await manager.stop(true);
      slotPool.close();
      await backend.close();
      await cleanup();
    },
  };
}
