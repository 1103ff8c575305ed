import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SandboxPoolSpec } from "../../api/index.ts";
import type { LeaseRecord, LeaseStore } from "../../backends/slots/lease-store.ts";
import { PoolLoop } from "../../backends/slots/loop.ts";
import { SlotPool } from "../../backends/slots/pool.ts";
import type { SandboxBackend } from "../../backends/types.ts";
import { poolTemplate } from "../../backends/template.ts";

/** The SandboxPool a runtime serves: its key, and what owns the objects made for it (its sandbox token Secret). */
export interface PoolIdentity {
  key: string;
  namespace: string;
  name: string;
  uid: string;
}

/** Builds a pool's backend from its spec (credentials come from Secrets the factory reads). */
export type BackendFactory = (pool: PoolIdentity, spec: SandboxPoolSpec) => Promise<SandboxBackend>;

/**
 * Lease records as one JSON file per pool under the controller's data dir (a PersistentVolume in a cluster),
 * replaced atomically on every change, so a new leader restores them and hands out no slot a live runner holds.
 */
export class FileLeaseStore implements LeaseStore {
  readonly #dir: string;
  readonly #cache = new Map<string, Map<string, LeaseRecord>>();
  constructor(dataDir: string) {
    this.#dir = join(dataDir, "leases");
  }
  #file(pool: string): string {
    return join(this.#dir, `${pool.replace("/", "_")}.json`);
  }
  async load(pool: string): Promise<LeaseRecord[] | undefined> {
    try {
      const records = JSON.parse(readFileSync(this.#file(pool), "utf8")) as LeaseRecord[];
      this.#cache.set(pool, new Map(records.map((r) => [r.id, r])));
      return records;
    } catch {
      return undefined;
    }
  }
  async put(pool: string, record: LeaseRecord): Promise<void> {
    this.#records(pool).set(record.id, { ...record });
    this.#write(pool);
  }
  async remove(pool: string, leaseId: string): Promise<void> {
    if (this.#records(pool).delete(leaseId)) this.#write(pool);
  }
  #records(pool: string): Map<string, LeaseRecord> {
    let records = this.#cache.get(pool);
    if (!records) this.#cache.set(pool, (records = new Map()));
    return records;
  }
  #write(pool: string): void {
    mkdirSync(this.#dir, { recursive: true });
    const path = this.#file(pool);
    writeFileSync(`${path}.tmp`, JSON.stringify([...this.#records(pool).values()]));
    renameSync(`${path}.tmp`, path);
  }
}

export interface PoolRuntime {
  backend: SandboxBackend;
  slots: SlotPool;
  acquireTimeoutMs: number;
  /** The pool loop each reconcile steps; its creates run in the background, so none holds a reconcile worker. */
  loop: PoolLoop;
}

/** The live backend and slot pool of every pool this controller manages, created on first reconcile. */
export class PoolRuntimes {
  readonly #factory: BackendFactory;
  readonly #store: LeaseStore;
  readonly #pools = new Map<string, PoolRuntime>();
  /** Called when a runner waits for a slot: the pool reconciles at once to create capacity. */
  onWaiting: (poolKey: string) => void = () => {};

  constructor(factory: BackendFactory, store: LeaseStore) {
    this.#factory = factory;
    this.#store = store;
  }

  get(poolKey: string): PoolRuntime | undefined {
    return this.#pools.get(poolKey);
  }

  async ensure(pool: PoolIdentity, spec: SandboxPoolSpec): Promise<PoolRuntime> {
    const poolKey = pool.key;
    const existing = this.#pools.get(poolKey);
    if (existing) return existing;
    const backend = await this.#factory(pool, spec);
    const slots = new SlotPool({
      backend,
      template: poolTemplate(poolKey, spec),
      leaseTtlMs: spec.leaseTTLSeconds * 1000,
      store: this.#store,
    });
    await slots.start();
    slots.onWaiting = () => this.onWaiting(poolKey);
    const runtime: PoolRuntime = {
      backend,
      slots,
      acquireTimeoutMs: spec.acquireTimeoutSeconds * 1000,
      // Scale down as soon as no runner waits; a failed terminate stops the step, to be reported in status.
      loop: new PoolLoop({ backend, slotPool: slots, scaleDownDelayMs: 0, haltOnTerminateFailure: true }),
    };
    this.#pools.set(poolKey, runtime);
    return runtime;
  }

  async drop(poolKey: string): Promise<void> {
    const runtime = this.#pools.get(poolKey);
    if (!runtime) return;
    this.#pools.delete(poolKey);
    await runtime.loop.idle();
    runtime.slots.close();
    await runtime.backend.close();
  }

  async closeAll(): Promise<void> {
    for (const key of [...this.#pools.keys()]) await this.drop(key);
  }
}
