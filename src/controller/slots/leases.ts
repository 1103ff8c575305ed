import { randomUUID } from "node:crypto";
import type { SandboxBackend, SandboxRef } from "../../backends/types.ts";
import { logger } from "../../log.ts";
import { realClock, type Clock } from "../runtime/clock.ts";

export interface SlotLease {
  id: string;
  /** The job key (`namespace/name`) that holds the lease: a runner can only touch its own job's leases. */
  holder: string;
  trajectoryId: string;
  sandbox: SandboxRef;
  slot: number;
  expiresAt: number;
}

export class AcquireTimeoutError extends Error {
  constructor(waitMs: number) {
    super(`no free slot within ${waitMs} ms`);
    this.name = "AcquireTimeoutError";
  }
}

interface Waiter {
  holder: string;
  trajectoryId: string;
  resolve: (lease: SlotLease) => void;
  reject: (error: Error) => void;
  timer: unknown;
}

const slotKey = (sandboxId: string, slot: number) => `${sandboxId}#${slot}`;

/**
 * The pool's slot leases, in the controller's memory (no object per slot in etcd): acquire with a bounded wait,
 * renew, release with reset, and expiry of leases whose runner stopped renewing. Records are handed to `persist`
 * after every change so a new leader restores them and hands out no slot a live runner holds.
 */
export class SlotLeaseTable {
  readonly #backend: SandboxBackend;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  readonly #persist: (leases: SlotLease[]) => void;
  readonly #log = logger("slot-leases");
  #sandboxes: SandboxRef[] = [];
  #slotsPerSandbox = 0;
  #draining = new Set<string>();
  #leases = new Map<string, SlotLease>();
  #busy = new Map<string, string>(); // slotKey -> lease id, or "reset" while a reset runs
  #quarantined = new Set<string>();
  #waiters: Waiter[] = [];

  constructor(options: { backend: SandboxBackend; ttlMs: number; clock?: Clock; persist?: (leases: SlotLease[]) => void; restored?: SlotLease[] }) {
    this.#backend = options.backend;
    this.#ttlMs = options.ttlMs;
    this.#clock = options.clock ?? realClock;
    this.#persist = options.persist ?? (() => {});
    for (const lease of options.restored ?? []) {
      this.#leases.set(lease.id, lease);
      this.#busy.set(slotKey(lease.sandbox.id, lease.slot), lease.id);
    }
  }

  /** The ready sandboxes slots may come from; draining ones keep their leases but lend no new slot. */
  setSandboxes(ready: readonly SandboxRef[], slotsPerSandbox: number, draining: ReadonlySet<string> = new Set()): void {
    this.#sandboxes = [...ready];
    this.#slotsPerSandbox = slotsPerSandbox;
    this.#draining = new Set(draining);
    const live = new Set(ready.map((s) => s.id));
    for (const key of this.#quarantined) if (!live.has(key.split("#")[0]!)) this.#quarantined.delete(key);
    this.#serveWaiters();
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  get quarantined(): number {
    return this.#quarantined.size;
  }

  leasedBySandbox(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const lease of this.#leases.values()) counts.set(lease.sandbox.id, (counts.get(lease.sandbox.id) ?? 0) + 1);
    return counts;
  }

  get(id: string): SlotLease | undefined {
    return this.#leases.get(id);
  }

  leases(): SlotLease[] {
    return [...this.#leases.values()];
  }

  acquire(holder: string, trajectoryId: string, waitMs: number): Promise<SlotLease> {
    const lease = this.#tryLease(holder, trajectoryId);
    if (lease) return Promise.resolve(lease);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { holder, trajectoryId, resolve, reject, timer: undefined };
      waiter.timer = this.#clock.setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new AcquireTimeoutError(waitMs));
      }, waitMs);
      this.#waiters.push(waiter);
    });
  }

  renew(id: string, holder: string): SlotLease | undefined {
    const lease = this.#leases.get(id);
    if (!lease || lease.holder !== holder) return undefined;
    lease.expiresAt = this.#clock.now() + this.#ttlMs;
    this.#persist(this.leases());
    return lease;
  }

  /** Ends a lease and resets the slot before it can be leased again; a failed reset quarantines the slot. */
  async release(id: string, holder: string | undefined, options: { broken?: boolean } = {}): Promise<boolean> {
    const lease = this.#leases.get(id);
    if (!lease || (holder !== undefined && lease.holder !== holder)) return false;
    this.#leases.delete(id);
    const key = slotKey(lease.sandbox.id, lease.slot);
    this.#busy.set(key, "reset");
    this.#persist(this.leases());
    try {
      await this.#backend.resetSlot(lease.sandbox, lease.slot);
      if (options.broken) await this.#backend.health(lease.sandbox).then((h) => { if (!h.ok) this.#quarantined.add(key); });
    } catch (error) {
      this.#log.warn({ err: error, sandbox: lease.sandbox.id, slot: lease.slot }, "slot reset failed, quarantined");
      this.#quarantined.add(key);
    } finally {
      this.#busy.delete(key);
    }
    this.#serveWaiters();
    return true;
  }

  /** Releases every lease past its TTL (the runner died or lost contact). Returns how many. */
  async expire(): Promise<number> {
    const now = this.#clock.now();
    const expired = this.leases().filter((l) => l.expiresAt <= now);
    await Promise.all(expired.map((l) => this.release(l.id, undefined)));
    return expired.length;
  }

  /** Ends every lease and waiting acquire of a job (deleted, suspended or finished). */
  async releaseHolder(holder: string): Promise<void> {
    for (const w of this.#waiters.filter((w) => w.holder === holder)) {
      this.#clock.clearTimeout(w.timer);
      w.reject(new Error("the job no longer runs"));
    }
    this.#waiters = this.#waiters.filter((w) => w.holder !== holder);
    await Promise.all(this.leases().filter((l) => l.holder === holder).map((l) => this.release(l.id, holder)));
  }

  close(): void {
    for (const w of this.#waiters.splice(0)) {
      this.#clock.clearTimeout(w.timer);
      w.reject(new Error("pool closed"));
    }
  }

  #tryLease(holder: string, trajectoryId: string): SlotLease | undefined {
    for (const sandbox of this.#sandboxes) {
      if (this.#draining.has(sandbox.id)) continue;
      for (let slot = 0; slot < this.#slotsPerSandbox; slot++) {
        const key = slotKey(sandbox.id, slot);
        if (this.#busy.has(key) || this.#quarantined.has(key)) continue;
        const lease: SlotLease = { id: randomUUID(), holder, trajectoryId, sandbox: { id: sandbox.id, name: sandbox.name }, slot, expiresAt: this.#clock.now() + this.#ttlMs };
        this.#leases.set(lease.id, lease);
        this.#busy.set(key, lease.id);
        this.#persist(this.leases());
        return lease;
      }
    }
    return undefined;
  }

  #serveWaiters(): void {
    while (this.#waiters.length > 0) {
      const waiter = this.#waiters[0]!;
      const lease = this.#tryLease(waiter.holder, waiter.trajectoryId);
      if (!lease) return;
      this.#waiters.shift();
      this.#clock.clearTimeout(waiter.timer);
      waiter.resolve(lease);
    }
  }
}
