import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SandboxPoolSpec } from "../../api/index.ts";
import type { SandboxBackend } from "../../backends/types.ts";
import { SlotLeaseTable, type SlotLease } from "../slots/leases.ts";

/** Builds a pool's backend from its spec (credentials come from Secrets the factory reads). */
export type BackendFactory = (poolKey: string, namespace: string, spec: SandboxPoolSpec) => Promise<SandboxBackend>;

export interface LeaseStore {
  load(poolKey: string): SlotLease[];
  save(poolKey: string, leases: SlotLease[]): void;
}

/** Lease records as one JSON file per pool under the data dir, replaced atomically. */
export function fileLeaseStore(dataDir: string): LeaseStore {
  const dir = join(dataDir, "leases");
  const file = (poolKey: string) => join(dir, `${poolKey.replace("/", "_")}.json`);
  return {
    load(poolKey) {
      try {
        return JSON.parse(readFileSync(file(poolKey), "utf8")) as SlotLease[];
      } catch {
        return [];
      }
    },
    save(poolKey, leases) {
      mkdirSync(dir, { recursive: true });
      const path = file(poolKey);
      writeFileSync(`${path}.tmp`, JSON.stringify(leases));
      renameSync(`${path}.tmp`, path);
    },
  };
}

export interface PoolRuntime {
  backend: SandboxBackend;
  leases: SlotLeaseTable;
  leaseTTLMs: number;
  acquireTimeoutMs: number;
}

/** The live backend and lease table of every pool this controller manages, created on first reconcile. */
export class PoolRuntimes {
  readonly #factory: BackendFactory;
  readonly #store: LeaseStore;
  readonly #pools = new Map<string, PoolRuntime>();

  constructor(factory: BackendFactory, store: LeaseStore) {
    this.#factory = factory;
    this.#store = store;
  }

  get(poolKey: string): PoolRuntime | undefined {
    return this.#pools.get(poolKey);
  }

  async ensure(poolKey: string, namespace: string, spec: SandboxPoolSpec): Promise<PoolRuntime> {
    const existing = this.#pools.get(poolKey);
    if (existing) return existing;
    const backend = await this.#factory(poolKey, namespace, spec);
    const leases = new SlotLeaseTable({
      backend,
      ttlMs: spec.leaseTTLSeconds * 1000,
      restored: this.#store.load(poolKey),
      persist: (records) => this.#store.save(poolKey, records),
    });
    const runtime = { backend, leases, leaseTTLMs: spec.leaseTTLSeconds * 1000, acquireTimeoutMs: spec.acquireTimeoutSeconds * 1000 };
    this.#pools.set(poolKey, runtime);
    return runtime;
  }

  async drop(poolKey: string): Promise<void> {
    const runtime = this.#pools.get(poolKey);
    if (!runtime) return;
    this.#pools.delete(poolKey);
    runtime.leases.close();
    this.#store.save(poolKey, []);
    await runtime.backend.close();
  }

  async closeAll(): Promise<void> {
    for (const runtime of this.#pools.values()) {
      runtime.leases.close();
      await runtime.backend.close();
    }
    this.#pools.clear();
  }
}
