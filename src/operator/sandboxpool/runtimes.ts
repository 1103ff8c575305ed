import type { SandboxPoolSpec } from "../../api/index.ts";
import type { LeaseStore } from "../../backends/slots/lease-store.ts";
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

export interface PoolRuntime {
  backend: SandboxBackend;
  slots: SlotPool;
  acquireTimeoutMs: number;
  /** What a job's pre-warm may ask of the pool (spec.maxSandboxes, spec.minSandboxesPerImage). */
  warmCaps: { maxSandboxes: number; minPerImage: number };
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
      warmCaps: { maxSandboxes: spec.maxSandboxes, minPerImage: spec.minSandboxesPerImage },
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
