import { randomBytes } from "node:crypto";
import { logger } from "../../base/log.ts";
import type { ExecRequest, ExecResult, SandboxBackend, SandboxInfo, SandboxRef, SandboxTemplate } from "../types.ts";
import { InMemoryLeaseStore, type LeaseRecord, type LeaseStore } from "./lease-store.ts";
import { drainRank } from "./plan.ts";
import type { Lease, SlotPoolOptions, SlotPoolStats } from "./types.ts";
import { SandboxError, isSandboxError, LeaseLostError } from "../../base/errors.ts";
import { realClock, type Clock } from "../../base/clock.ts";

const log = logger("slot-pool");

/** A slot moves free → leased → resetting → free; a failed reset ends in quarantined; after a restart without
 *  lease records it starts blocked (a live holder may still use it) until one TTL has passed. `leaseId` is the
 *  lease whose record stays stored until the slot is clean, so a restart meanwhile does not find the slot free. */
type SlotState =
  | { kind: "free" }
  | { kind: "leased"; lease: Lease }
  | { kind: "resetting"; leaseId?: string }
  | { kind: "blocked"; until: number }
  | { kind: "quarantined"; reason: string; leaseId?: string };

interface Slot {
  key: string;
  sandbox: SandboxInfo;
  index: number;
  state: SlotState;
  /** Backend calls running on the slot; kept on the slot, not its state, so a renew mid-call does not lose them. */
  inFlight: number;
  /** Set while a recycle waits for the calls of the slot's last holder to end. */
  onIdle?: () => void;
}

interface Waiter {
  holder: string;
  startedAt: number;
  resolve: (lease: Lease) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

/**
 * Slots and leases over one backend and template: FIFO-fair acquire, renew, release with reset, TTL expiry,
 * quarantine of slots that fail to reset, and rebuild after a restart. Never two holders of one slot: a slot
 * changes hands only inside synchronous code, and only from the free state.
 */
export class SlotPool {
  /** Called when an acquirer has to wait; the pool manager sets it to reconcile at once. */
  onWaiting: (() => void) | undefined;
  private readonly backend: SandboxBackend;
  private currentTemplate: SandboxTemplate;
  private ttlMs: number;
  private readonly store: LeaseStore;
  private readonly clock: Clock;
  private readonly resetTimeoutMs: number;
  private readonly options: SlotPoolOptions;
  private readonly slots = new Map<string, Slot>();
  private readonly free = new Set<Slot>();
  private readonly leases = new Map<string, Slot>();
  private readonly waiters: Waiter[] = [];
  private readonly toReplace = new Set<string>();
  private readonly sandboxes = new Map<string, SandboxInfo>();
  /** Known sandboxes listed as not ready for now: they keep their slots and leases but hand out none. */
  private readonly away = new Set<string>();
  private restored = new Map<string, LeaseRecord>();
  private blockOlderThan: number | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sandboxesKnown = false;

  constructor(options: SlotPoolOptions) {
    this.options = options;
    this.backend = options.backend;
    this.currentTemplate = options.template;
    this.ttlMs = options.leaseTtlMs;
    this.store = options.store ?? new InMemoryLeaseStore();
    this.clock = options.clock ?? realClock;
    this.resetTimeoutMs = options.resetTimeoutMs ?? 60_000;
  }

  /** The template new sandboxes are created from; leases prefer slots on it, so older sandboxes drain. */
  get template(): SandboxTemplate {
    return this.currentTemplate;
  }

  /** The lease TTL given to new and renewed leases. */
  get leaseTtlMs(): number {
    return this.ttlMs;
  }

  /**
   * Adopts a changed pool spec: new leases prefer sandboxes on `template` (its hash, slots and shape), and
   * `leaseTtlMs` applies from the next acquire or renew; current leases keep their expiry.
   */
  setTemplate(template: SandboxTemplate, leaseTtlMs: number): void {
    if (template.pool !== this.currentTemplate.pool)
      throw new Error(`template of pool ${template.pool} given to pool ${this.currentTemplate.pool}`);
    if (template.templateHash !== this.currentTemplate.templateHash || leaseTtlMs !== this.ttlMs) {
      log.info({ pool: template.pool, templateHash: template.templateHash, slots: template.slots, leaseTtlMs }, "pool template updated");
    }
    this.currentTemplate = template;
    this.ttlMs = leaseTtlMs;
  }

  /** Loads lease records; `sweepIntervalMs: 0` leaves sweeping to the caller (tests with a fake clock). */
  async start(sweepIntervalMs = Math.max(50, Math.min(1000, this.ttlMs / 4))): Promise<void> {
    const records = await this.store.load(this.template.pool);
    if (records === undefined) this.blockOlderThan = this.clock.now();
    else this.restored = new Map(records.map((record) => [record.id, record]));
    if (sweepIntervalMs > 0) {
      this.sweepTimer = setInterval(() => this.sweep(), sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  /**
   * Whether the pool has seen the backend's sandboxes once. Before that a restored lease has no slot yet, so a
   * call on it must wait rather than be told its lease is lost.
   */
  get adopted(): boolean {
    return this.sandboxesKnown;
  }

  /** Adopts the backend's view of the pool: new ready sandboxes add slots, gone ones take theirs away. A known one
   *  listed as starting (e.g. a missed health probe) is only set aside: dropped, its slots would come back unreset. */
  setSandboxes(infos: readonly SandboxInfo[]): void {
    this.sandboxesKnown = true;
    const listed = new Map(infos.filter((info) => info.phase === "ready" || info.phase === "starting").map((info) => [info.name, info]));
    for (const [name, info] of this.sandboxes) if (!listed.has(name)) this.dropSandbox(info, "sandbox is gone");
    for (const [name, info] of listed) {
      if (this.sandboxes.has(name)) this.setAway(name, info.phase !== "ready");
      else if (info.phase === "ready") this.addSandbox(info);
    }
    this.dispatch();
  }

  acquire(holder: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<Lease> {
    const startedAt = this.clock.now();
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (this.waiters.length === 0) {
      const slot = this.pickFree();
      if (slot !== undefined) return this.grant(slot, holder, startedAt);
    }
    return new Promise<Lease>((resolve, reject) => {
      const onAbort = (): void => this.abandon(waiter, options.signal?.reason, "aborted");
      const timer = setTimeout(
        () =>
          this.abandon(
            waiter,
            new SandboxError("capacity", `no free slot in pool ${this.template.pool} within ${options.timeoutMs} ms`),
            "timeout",
          ),
        options.timeoutMs,
      );
      const waiter: Waiter = {
        holder,
        startedAt,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
        },
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
      this.onWaiting?.();
    });
  }

  /** Extends a current lease, or re-adopts a blocked slot after a restart (the lease id names its slot). */
  async renew(leaseId: string): Promise<Lease> {
    const slot = this.leases.get(leaseId) ?? this.adoptable(leaseId);
    if (slot === undefined) throw new LeaseLostError(`lease ${leaseId} is not current`);
    const previous = slot.state.kind === "leased" ? slot.state : undefined;
    if (previous !== undefined && previous.lease.expiresAt <= this.clock.now() && slot.inFlight === 0) {
      throw new LeaseLostError(`lease ${leaseId} expired`);
    }
    const holder = previous?.lease.holder ?? "re-adopted";
    const lease: Lease = { id: leaseId, holder, sandbox: refOf(slot.sandbox), slot: slot.index, expiresAt: this.clock.now() + this.ttlMs };
    slot.state = { kind: "leased", lease };
    this.leases.set(leaseId, slot);
    await this.persist(lease);
    return lease;
  }

  /** Gives the slot back: its workspace is reset first. Releasing a lease that is no longer current is a no-op. */
  async release(leaseId: string): Promise<void> {
    const slot = this.leases.get(leaseId);
    if (slot === undefined) return;
    await this.recycle(slot, "released");
  }

  exec(leaseId: string, request: Omit<ExecRequest, "slot">): Promise<ExecResult> {
    return this.through(leaseId, (sandbox, slot) => this.backend.exec(sandbox, { ...request, slot }));
  }

  readFile(leaseId: string, path: string): Promise<Uint8Array> {
    return this.through(leaseId, (sandbox, slot) => this.backend.readFile(sandbox, slot, path));
  }

  writeFile(leaseId: string, path: string, data: Uint8Array | string): Promise<void> {
    return this.through(leaseId, (sandbox, slot) => this.backend.writeFile(sandbox, slot, path, data));
  }

  /** Expires leases whose holder stopped renewing and unblocks slots whose grace period ended. */
  sweep(): void {
    const now = this.clock.now();
    for (const slot of this.slots.values()) {
      const state = slot.state;
      if (state.kind === "leased" && slot.inFlight === 0 && state.lease.expiresAt <= now) {
        log.warn({ lease: state.lease.id, holder: state.lease.holder, slot: slot.key }, "lease expired, resetting its slot");
        void this.recycle(slot, "expired");
      } else if (state.kind === "blocked" && state.until <= now) {
        void this.recycle(slot, "unblocked");
      }
    }
  }

  /** Sandboxes that must be replaced (a reset failed, or the sandbox was found gone). */
  replacements(): ReadonlySet<string> {
    return this.toReplace;
  }

  leasedSlots(sandboxName: string): number {
    let count = 0;
    for (const slot of this.slots.values()) if (slot.sandbox.name === sandboxName && slot.state.kind === "leased") count++;
    return count;
  }

  waiting(): number {
    return this.waiters.length;
  }

  stats(): SlotPoolStats {
    const count: Record<SlotState["kind"], number> = { free: 0, leased: 0, resetting: 0, blocked: 0, quarantined: 0 };
    for (const slot of this.slots.values()) count[slot.state.kind]++;
    return {
      slotsTotal: this.slots.size,
      slotsLeased: count.leased,
      slotsFree: count.free,
      slotsResetting: count.resetting,
      slotsBlocked: count.blocked,
      slotsQuarantined: count.quarantined,
      waiting: this.waiters.length,
    };
  }

  close(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    for (const waiter of this.waiters.splice(0)) {
      waiter.cleanup();
      waiter.reject(new SandboxError("transient", "slot pool closed"));
    }
  }

  private async grant(slot: Slot, holder: string, startedAt: number): Promise<Lease> {
    const lease: Lease = {
      id: `${slot.sandbox.name}/${slot.index}/${randomBytes(6).toString("hex")}`,
      holder,
      sandbox: refOf(slot.sandbox),
      slot: slot.index,
      expiresAt: this.clock.now() + this.ttlMs,
    };
    this.free.delete(slot);
    slot.state = { kind: "leased", lease };
    this.leases.set(lease.id, slot);
    try {
      await this.persist(lease);
    } catch (error) {
      this.leases.delete(lease.id);
      this.makeFree(slot); // nobody touched it: no reset needed
      throw new SandboxError("transient", `could not record lease: ${(error as Error).message}`, { cause: error });
    }
    this.options.onAcquire?.(this.clock.now() - startedAt, "acquired");
    return lease;
  }

  private abandon(waiter: Waiter, reason: unknown, outcome: "timeout" | "aborted"): void {
    const index = this.waiters.indexOf(waiter);
    if (index < 0) return;
    this.waiters.splice(index, 1);
    waiter.cleanup();
    this.options.onAcquire?.(this.clock.now() - waiter.startedAt, outcome);
    waiter.reject(reason);
  }

  /** Hands free slots to waiters, oldest waiter first. */
  private dispatch(): void {
    while (this.waiters.length > 0) {
      const slot = this.pickFree();
      if (slot === undefined) return;
      const waiter = this.waiters.shift();
      if (waiter === undefined) return;
      waiter.cleanup();
      this.grant(slot, waiter.holder, waiter.startedAt).then(waiter.resolve, waiter.reject);
    }
  }

  /** A free slot, preferring current sandboxes far from their lifetime, so stale and expiring ones drain. */
  private pickFree(): Slot | undefined {
    let best: { slot: Slot; rank: number } | undefined;
    for (const slot of this.free) {
      const rank = drainRank(slot.sandbox, this.template, this.clock.now());
      if (rank === 0) return slot;
      if (best === undefined || rank < best.rank) best = { slot, rank };
    }
    return best?.slot;
  }

  private makeFree(slot: Slot): void {
    if (this.slots.get(slot.key) !== slot || this.toReplace.has(slot.sandbox.name)) {
      slot.state = { kind: "resetting" }; // its sandbox is going away: never hand it out again
      return;
    }
    slot.state = { kind: "free" };
    if (this.away.has(slot.sandbox.name)) return; // handed out once its sandbox is ready again
    this.free.add(slot);
    this.dispatch();
  }

  private setAway(name: string, away: boolean): void {
    if (away === this.away.has(name)) return;
    if (away) this.away.add(name);
    else this.away.delete(name);
    for (const slot of this.slots.values()) {
      if (slot.sandbox.name !== name || slot.state.kind !== "free") continue;
      if (away) this.free.delete(slot);
      else if (!this.toReplace.has(name)) this.free.add(slot);
    }
  }

  private async recycle(slot: Slot, why: string): Promise<void> {
    const leaseId = slot.state.kind === "leased" ? slot.state.lease.id : undefined;
    slot.state = { kind: "resetting", leaseId }; // synchronously, so a concurrent sweep or release cannot recycle it twice
    if (leaseId !== undefined) this.leases.delete(leaseId);
    try {
      await this.reset(slot);
      if (slot.inFlight > 0) {
        // The last holder's call still runs (released mid-call) and may write after the reset: wipe once it ended.
        await withTimeout(new Promise<void>((resolve) => (slot.onIdle = resolve)), this.resetTimeoutMs, `calls on ${slot.key} to end`);
        await this.reset(slot);
      }
      if (leaseId !== undefined) await this.forget(leaseId);
      this.makeFree(slot);
    } catch (error) {
      slot.state = { kind: "quarantined", reason: (error as Error).message, leaseId };
      this.markForReplacement(slot.sandbox.name, `reset of slot ${slot.index} failed (${why})`, error);
    }
  }

  private reset(slot: Slot): Promise<void> {
    return withTimeout(this.backend.resetSlot(refOf(slot.sandbox), slot.index), this.resetTimeoutMs, `reset of ${slot.key}`);
  }

  private async through<T>(leaseId: string, call: (sandbox: SandboxRef, slot: number) => Promise<T>): Promise<T> {
    const slot = this.leases.get(leaseId);
    const state = slot?.state;
    if (slot === undefined || state?.kind !== "leased" || state.lease.expiresAt <= this.clock.now()) {
      throw new LeaseLostError(`lease ${leaseId} is not current`);
    }
    slot.inFlight++; // a call in progress keeps the lease from expiring under it
    try {
      return await call(refOf(slot.sandbox), slot.index);
    } catch (error) {
      if (isSandboxError(error, "gone")) this.markForReplacement(slot.sandbox.name, "sandbox is gone", error);
      throw error;
    } finally {
      slot.inFlight--;
      if (slot.inFlight === 0) slot.onIdle?.();
    }
  }

  private markForReplacement(name: string, reason: string, error: unknown): void {
    if (this.toReplace.has(name)) return;
    this.toReplace.add(name);
    log.error({ sandbox: name, reason, err: error }, "sandbox marked for replacement; its slots are no longer handed out");
    for (const slot of this.free) if (slot.sandbox.name === name) this.free.delete(slot);
  }

  private addSandbox(info: SandboxInfo): void {
    this.sandboxes.set(info.name, info);
    const blockedUntil =
      this.blockOlderThan !== undefined && info.createdAt.getTime() < this.blockOlderThan ? this.blockOlderThan + this.ttlMs : undefined;
    const restored = new Map<number, LeaseRecord>();
    for (const record of this.restored.values()) if (record.sandboxName === info.name) restored.set(record.slot, record);
    for (let index = 0; index < info.slots; index++) {
      const slot: Slot = { key: `${info.name}/${index}`, sandbox: info, index, state: { kind: "free" }, inFlight: 0 };
      this.slots.set(slot.key, slot);
      const record = restored.get(index);
      if (record !== undefined) {
        const lease: Lease = { id: record.id, holder: record.holder, sandbox: refOf(info), slot: index, expiresAt: record.expiresAt };
        slot.state = { kind: "leased", lease };
        this.leases.set(record.id, slot);
        this.restored.delete(record.id);
      } else if (blockedUntil !== undefined) {
        slot.state = { kind: "blocked", until: blockedUntil };
      } else {
        this.free.add(slot);
      }
    }
  }

  private dropSandbox(info: SandboxInfo, reason: string): void {
    this.sandboxes.delete(info.name);
    this.toReplace.delete(info.name);
    this.away.delete(info.name);
    for (let index = 0; index < info.slots; index++) {
      const slot = this.slots.get(`${info.name}/${index}`);
      if (slot === undefined) continue;
      const state = slot.state;
      if (state.kind === "leased") {
        log.warn({ lease: state.lease.id, sandbox: info.name, reason }, "lease lost with its sandbox");
        this.leases.delete(state.lease.id);
        void this.forget(state.lease.id);
      } else if ((state.kind === "resetting" || state.kind === "quarantined") && state.leaseId !== undefined) {
        void this.forget(state.leaseId);
      }
      this.free.delete(slot);
      this.slots.delete(slot.key);
    }
  }

  private adoptable(leaseId: string): Slot | undefined {
    const parts = leaseId.split("/");
    if (parts.length !== 3) return undefined;
    const slot = this.slots.get(`${parts[0]}/${parts[1]}`);
    return slot?.state.kind === "blocked" ? slot : undefined;
  }

  private forget(leaseId: string): Promise<void> {
    return this.store
      .remove(this.template.pool, leaseId)
      .catch((error: unknown) => log.warn({ err: error, lease: leaseId }, "could not remove lease record"));
  }

  private persist(lease: Lease): Promise<void> {
    const { id, holder, sandbox, slot, expiresAt } = lease;
    return this.store.put(this.template.pool, { id, holder, sandboxId: sandbox.id, sandboxName: sandbox.name, slot, expiresAt });
  }
}

function refOf(info: SandboxInfo): SandboxRef {
  return { id: info.id, name: info.name };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SandboxError("transient", `${what} took over ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
