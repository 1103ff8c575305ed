import { randomBytes } from "node:crypto";
import { logger } from "../../base/log.ts";
import type { ExecRequest, ExecResult, SandboxBackend, SandboxInfo, SandboxRef, SandboxTemplate } from "../types.ts";
import { InMemoryLeaseStore, type LeaseRecord, type LeaseStore } from "./lease-store.ts";
import { refOf, SlotTable, type Slot, type SlotState } from "./table.ts";
import { withTimeout } from "../../base/timeout.ts";
import type { Lease, SlotPoolOptions, SlotPoolStats } from "./types.ts";
import type { ImageWaiters } from "./plan.ts";
import { WaitQueue, type Waiter } from "./waiters.ts";
import { templateForImage } from "../template.ts";
import { ImageUsage } from "./images.ts";
import { SandboxError, isSandboxError, LeaseLostError } from "../../base/errors.ts";
import { realClock, type Clock } from "../../base/clock.ts";

const log = logger("slot-pool");

/**
 * Slots and leases over one backend and template, on sandboxes of many images (a lease's slot is on a sandbox of
 * the image it asked for; the template's image when it names none): fair acquire, renew, release with reset, TTL expiry,
 * quarantine of slots that fail to reset, and rebuild after a restart. Never two holders of one slot: a slot
 * changes hands only inside synchronous code, and only from the free state. The slot table keeps which
 * sandboxes and slots exist and which free ones may be handed out; the pool keeps the leases and the waiters.
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
  private readonly table = new SlotTable();
  private readonly leases = new Map<string, Slot>();
  private readonly waiters = new WaitQueue((waiter, outcome) => this.options.onAcquire?.(this.clock.now() - waiter.startedAt, outcome));
  private restored = new Map<string, LeaseRecord>();
  private blockOlderThan: number | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sandboxesKnown = false;
  /** Templates of the images asked for, from the current template (their hashes follow it). */
  private templates = new Map<string, SandboxTemplate>();
  /** Which images were asked for lately, and which a job pre-warms (`images.prewarm`): the planner's warm floors. */
  readonly images: ImageUsage;

  constructor(options: SlotPoolOptions) {
    this.options = options;
    this.backend = options.backend;
    this.currentTemplate = options.template;
    this.ttlMs = options.leaseTtlMs;
    this.store = options.store ?? new InMemoryLeaseStore();
    this.clock = options.clock ?? realClock;
    this.images = new ImageUsage(this.clock);
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
    if (template.templateHash !== this.currentTemplate.templateHash) this.templates = new Map();
    this.currentTemplate = template;
    this.ttlMs = leaseTtlMs;
  }

  /** The template of sandboxes of `image`: the pool's, with the image and a hash of its own. */
  templateFor(image: string): SandboxTemplate {
    let template = this.templates.get(image);
    if (template === undefined) this.templates.set(image, (template = templateForImage(this.currentTemplate, image)));
    return template;
  }

  /** Waiting acquirers by image, with when the oldest of each began to wait (the planner's fairness). */
  waitingByImage(): Map<string, ImageWaiters> {
    return this.waiters.byImage();
  }

  /** Busy sandboxes that take no new leases so they empty for another image (the planner's `evicting`). */
  setEvicting(names: readonly string[]): void {
    this.table.setEvicting(new Set(names));
    this.dispatch(); // a sandbox no longer evicted hands out its free slots again
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
    const listed = new Map(
      infos
        .filter((info) => info.phase === "ready" || info.phase === "starting")
        .map((info) => [info.name, { ...info, image: this.imageOf(info) }]),
    );
    for (const name of this.table.sandboxNames()) if (!listed.has(name)) this.dropSandbox(name, "sandbox is gone");
    for (const [name, info] of listed) {
      if (this.table.has(name)) this.table.setAway(name, info.phase !== "ready");
      else if (info.phase === "ready") this.addSandbox(info);
    }
    this.dispatch();
  }

  /** The image a listed sandbox runs: as the backend stored it, else the template's (sandboxes from before images were stored). */
  imageOf(info: SandboxInfo): string {
    return info.image ?? this.currentTemplate.image;
  }

  /**
   * A slot on a sandbox of `image` (the item's spec.environment.image; default the template's). `group` (e.g. a
   * GRPO group's id) places the leases of one group on one sandbox where its free slots allow.
   */
  acquire(holder: string, options: { timeoutMs: number; image?: string; group?: string; signal?: AbortSignal }): Promise<Lease> {
    const startedAt = this.clock.now();
    const image = options.image ?? this.currentTemplate.image;
    this.images.used(image);
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (!this.waiters.has(image)) {
      const slot = this.pickFree(image, options.group);
      if (slot !== undefined) return this.grant(slot, holder, startedAt, options.group);
    }
    const timeoutError = new SandboxError(
      "capacity",
      `no free slot for image ${image} in pool ${this.template.pool} within ${options.timeoutMs} ms`,
    );
    const waiting = this.waiters.wait({ holder, image, group: options.group, startedAt }, { ...options, timeoutError });
    this.onWaiting?.();
    return waiting;
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
    const lease = this.leaseOn(slot.sandbox, slot.index, leaseId, holder, this.clock.now() + this.ttlMs, previous?.lease.group);
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
    for (const slot of this.table.all()) {
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
    return this.table.replacements();
  }

  leasedSlots(sandboxName: string): number {
    return this.table.leasedSlots(sandboxName);
  }

  waiting(): number {
    return this.waiters.length;
  }

  stats(): SlotPoolStats {
    return { ...this.table.stats(), waiting: this.waiters.length };
  }

  close(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.waiters.rejectAll(new SandboxError("transient", "slot pool closed"));
  }

  private leaseOn(info: SandboxInfo, slot: number, id: string, holder: string, expiresAt: number, group: string | undefined): Lease {
    const placement = group === undefined ? {} : { group };
    return { id, holder, sandbox: refOf(info), image: this.imageOf(info), ...placement, slot, expiresAt };
  }

  private async grant(slot: Slot, holder: string, startedAt: number, group: string | undefined): Promise<Lease> {
    const id = `${slot.sandbox.name}/${slot.index}/${randomBytes(6).toString("hex")}`;
    const lease = this.leaseOn(slot.sandbox, slot.index, id, holder, this.clock.now() + this.ttlMs, group);
    this.table.take(slot, lease);
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

  /**
   * Hands free slots to waiters fairly across holders (jobs): the waiter whose holder leases the fewest slots,
   * the oldest among equals, so one job's queue of acquires cannot starve another job's. A waiter whose image has
   * no free slot does not hold up waiters for other images.
   */
  private dispatch(): void {
    for (let next = this.nextToServe(); next !== undefined; next = this.nextToServe()) {
      const { waiter, slot } = next;
      this.waiters.take(waiter);
      this.grant(slot, waiter.holder, waiter.startedAt, waiter.group).then(waiter.resolve, waiter.reject);
    }
  }

  private nextToServe(): { waiter: Waiter; slot: Slot } | undefined {
    const noFreeSlot = new Set<string>();
    for (const waiter of this.waiters.inServiceOrder(this.leasedByHolder())) {
      if (noFreeSlot.has(waiter.image)) continue;
      const slot = this.pickFree(waiter.image, waiter.group);
      if (slot !== undefined) return { waiter, slot };
      noFreeSlot.add(waiter.image);
    }
    return undefined;
  }

  private leasedByHolder(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const slot of this.leases.values()) {
      if (slot.state.kind === "leased") counts.set(slot.state.lease.holder, (counts.get(slot.state.lease.holder) ?? 0) + 1);
    }
    return counts;
  }

  private pickFree(image: string, group: string | undefined): Slot | undefined {
    return this.table.pickFree(image, (name) => this.templateFor(name), this.clock.now(), group);
  }

  private makeFree(slot: Slot): void {
    if (this.table.makeFree(slot)) this.dispatch();
  }

  private async recycle(slot: Slot, why: string): Promise<void> {
    const leaseId = slot.state.kind === "leased" ? slot.state.lease.id : undefined;
    slot.state = { kind: "resetting", leaseId }; // synchronously, so a concurrent sweep or release cannot recycle it twice
    if (leaseId !== undefined) this.leases.delete(leaseId);
    try {
      await this.reset(slot);
      if (slot.inFlight > 0) {
        // The last holder's call still runs (released mid-call) and may write after the reset: wipe once it ended.
        await this.inTime(new Promise<void>((resolve) => (slot.onIdle = resolve)), `calls on ${slot.key} to end`);
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
    return this.inTime(this.backend.resetSlot(refOf(slot.sandbox), slot.index), `reset of ${slot.key}`);
  }

  private inTime<T>(work: Promise<T>, what: string): Promise<T> {
    return withTimeout(work, this.resetTimeoutMs, () => new SandboxError("transient", `${what} took over ${this.resetTimeoutMs} ms`));
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
    if (!this.table.markForReplacement(name)) return;
    log.error({ sandbox: name, reason, err: error }, "sandbox marked for replacement; its slots are no longer handed out");
  }

  /** Adds a listed sandbox's slots: those named by restored lease records go back to their holders, and after a
   *  restart without records the slots of older sandboxes stay blocked for one TTL. */
  private addSandbox(info: SandboxInfo): void {
    const blockedUntil =
      this.blockOlderThan !== undefined && info.createdAt.getTime() < this.blockOlderThan ? this.blockOlderThan + this.ttlMs : undefined;
    const restored = new Map<number, LeaseRecord>();
    for (const record of this.restored.values()) if (record.sandboxName === info.name) restored.set(record.slot, record);
    const slots = this.table.add(info, (index): SlotState => {
      const record = restored.get(index);
      if (record === undefined) return blockedUntil !== undefined ? { kind: "blocked", until: blockedUntil } : { kind: "free" };
      return { kind: "leased", lease: this.leaseOn(info, index, record.id, record.holder, record.expiresAt, undefined) };
    });
    for (const slot of slots) {
      if (slot.state.kind !== "leased") continue;
      this.leases.set(slot.state.lease.id, slot);
      this.restored.delete(slot.state.lease.id);
    }
  }

  /** Forgets the leases on a gone sandbox's slots, and the records of leases whose slot was still being reset. */
  private dropSandbox(name: string, reason: string): void {
    for (const slot of this.table.drop(name)) {
      const state = slot.state;
      if (state.kind === "leased") {
        log.warn({ lease: state.lease.id, sandbox: name, reason }, "lease lost with its sandbox");
        this.leases.delete(state.lease.id);
        void this.forget(state.lease.id);
      } else if ((state.kind === "resetting" || state.kind === "quarantined") && state.leaseId !== undefined) {
        void this.forget(state.leaseId);
      }
    }
  }

  private adoptable(leaseId: string): Slot | undefined {
    const parts = leaseId.split("/");
    if (parts.length !== 3) return undefined;
    const slot = this.table.get(`${parts[0]}/${parts[1]}`);
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
