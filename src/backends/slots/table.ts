import type { SandboxInfo, SandboxRef, SandboxTemplate } from "../types.ts";
import { chooseSandbox, type PlacementCandidate } from "./placement.ts";
import { drainRank } from "./plan.ts";
import type { Lease, SlotPoolStats } from "./types.ts";

/** A slot moves free → leased → resetting → free; a failed reset ends in quarantined; after a restart without
 *  lease records it starts blocked (a live holder may still use it) until one TTL has passed. `leaseId` is the
 *  lease whose record stays stored until the slot is clean, so a restart meanwhile does not find the slot free. */
export type SlotState =
  | { kind: "free" }
  | { kind: "leased"; lease: Lease }
  | { kind: "resetting"; leaseId?: string }
  | { kind: "blocked"; until: number }
  | { kind: "quarantined"; reason: string; leaseId?: string };

export interface Slot {
  key: string;
  sandbox: SandboxInfo;
  index: number;
  state: SlotState;
  /** Backend calls running on the slot; kept on the slot, not its state, so a renew mid-call does not lose them. */
  inFlight: number;
  /** Set while a recycle waits for the calls of the slot's last holder to end. */
  onIdle?: () => void;
}

/**
 * Which sandboxes and slots a pool has, and which free slots may be handed out: those of sandboxes that are
 * ready (not away), not marked for replacement, and not being evicted. The free sets change only here; a slot's
 * other states are the lease lifecycle's, which sets them directly. Sandbox infos carry their image (the pool fills
 * in its own for a sandbox that names none).
 */
export class SlotTable {
  private readonly slots = new Map<string, Slot>();
  /** Free slots that may be handed out, by sandbox. */
  private readonly free = new Map<string, Set<Slot>>();
  private readonly sandboxes = new Map<string, SandboxInfo>();
  /** Known sandboxes listed as not ready for now: they keep their slots and leases but hand out none. */
  private readonly away = new Set<string>();
  private readonly toReplace = new Set<string>();
  /** Busy sandboxes emptied for another image (the planner's `evicting`): their free slots are not handed out. */
  private evicting: ReadonlySet<string> = new Set();

  all(): IterableIterator<Slot> {
    return this.slots.values();
  }

  get(key: string): Slot | undefined {
    return this.slots.get(key);
  }

  has(sandboxName: string): boolean {
    return this.sandboxes.has(sandboxName);
  }

  sandboxNames(): string[] {
    return [...this.sandboxes.keys()];
  }

  /** Adds a sandbox's slots in the states `initial` gives them; the free ones can be handed out at once. */
  add(info: SandboxInfo, initial: (index: number) => SlotState): Slot[] {
    this.sandboxes.set(info.name, info);
    const added: Slot[] = [];
    for (let index = 0; index < info.slots; index++) {
      const slot: Slot = { key: `${info.name}/${index}`, sandbox: info, index, state: initial(index), inFlight: 0 };
      this.slots.set(slot.key, slot);
      if (slot.state.kind === "free") this.freeOf(info.name).add(slot);
      added.push(slot);
    }
    return added;
  }

  /** Takes a sandbox and its slots away; returns the slots, in the states they were in, so their leases can be dropped. */
  drop(sandboxName: string): Slot[] {
    const info = this.sandboxes.get(sandboxName);
    if (info === undefined) return [];
    this.sandboxes.delete(sandboxName);
    this.toReplace.delete(sandboxName);
    this.away.delete(sandboxName);
    this.free.delete(sandboxName);
    const dropped: Slot[] = [];
    for (let index = 0; index < info.slots; index++) {
      const slot = this.slots.get(`${sandboxName}/${index}`);
      if (slot === undefined) continue;
      this.slots.delete(slot.key);
      dropped.push(slot);
    }
    return dropped;
  }

  /**
   * A free slot on a sandbox of `image` (placement.ts picks the sandbox): current sandboxes far from their lifetime
   * first, so stale and expiring ones drain; a `group`'s leases stay together where free slots allow.
   */
  pickFree(image: string, templateOf: (image: string) => SandboxTemplate, now: number, group: string | undefined): Slot | undefined {
    const groupLeases = group === undefined ? undefined : this.groupLeases(group);
    const candidates: PlacementCandidate[] = [];
    for (const [name, free] of this.free) {
      const info = this.sandboxes.get(name);
      if (free.size === 0 || info === undefined || info.image !== image || this.evicting.has(name)) continue;
      candidates.push({ name, rank: drainRank(info, templateOf(image), now), free: free.size, groupLeases: groupLeases?.get(name) ?? 0 });
    }
    const chosen = chooseSandbox(candidates, groupLeases !== undefined);
    if (chosen === undefined) return undefined;
    const [slot] = this.free.get(chosen)!;
    return slot;
  }

  /** Where a group's leases are now: leases by sandbox name. */
  private groupLeases(group: string): Map<string, number> {
    const bySandbox = new Map<string, number>();
    for (const slot of this.slots.values()) {
      if (slot.state.kind !== "leased" || slot.state.lease.group !== group) continue;
      bySandbox.set(slot.sandbox.name, (bySandbox.get(slot.sandbox.name) ?? 0) + 1);
    }
    return bySandbox;
  }

  /** The sandboxes whose free slots stay unused so they empty for another image (replaces the previous set). */
  setEvicting(names: ReadonlySet<string>): void {
    this.evicting = names;
  }

  /** Hands a free slot to a lease. */
  take(slot: Slot, lease: Lease): void {
    this.free.get(slot.sandbox.name)?.delete(slot);
    slot.state = { kind: "leased", lease };
  }

  /** Returns a clean slot to the free state; true if it can be handed out now. */
  makeFree(slot: Slot): boolean {
    if (this.slots.get(slot.key) !== slot || this.toReplace.has(slot.sandbox.name)) {
      slot.state = { kind: "resetting" }; // its sandbox is going away: never hand it out again
      return false;
    }
    slot.state = { kind: "free" };
    if (this.away.has(slot.sandbox.name)) return false; // handed out once its sandbox is ready again
    this.freeOf(slot.sandbox.name).add(slot);
    return !this.evicting.has(slot.sandbox.name);
  }

  setAway(sandboxName: string, away: boolean): void {
    if (away === this.away.has(sandboxName)) return;
    if (away) this.away.add(sandboxName);
    else this.away.delete(sandboxName);
    for (const slot of this.slots.values()) {
      if (slot.sandbox.name !== sandboxName || slot.state.kind !== "free") continue;
      if (away) this.free.get(sandboxName)?.delete(slot);
      else if (!this.toReplace.has(sandboxName)) this.freeOf(sandboxName).add(slot);
    }
  }

  /** Stops handing out the sandbox's slots until it is dropped; false if it was marked already. */
  markForReplacement(sandboxName: string): boolean {
    if (this.toReplace.has(sandboxName)) return false;
    this.toReplace.add(sandboxName);
    this.free.delete(sandboxName);
    return true;
  }

  /** Sandboxes that must be replaced (a reset failed, or the sandbox was found gone). */
  replacements(): ReadonlySet<string> {
    return this.toReplace;
  }

  private freeOf(sandboxName: string): Set<Slot> {
    let free = this.free.get(sandboxName);
    if (free === undefined) this.free.set(sandboxName, (free = new Set()));
    return free;
  }

  leasedSlots(sandboxName: string): number {
    let count = 0;
    for (const slot of this.slots.values()) if (slot.sandbox.name === sandboxName && slot.state.kind === "leased") count++;
    return count;
  }

  stats(): Omit<SlotPoolStats, "waiting"> {
    const count: Record<SlotState["kind"], number> = { free: 0, leased: 0, resetting: 0, blocked: 0, quarantined: 0 };
    for (const slot of this.slots.values()) count[slot.state.kind]++;
    return {
      slotsTotal: this.slots.size,
      slotsLeased: count.leased,
      slotsFree: count.free,
      slotsResetting: count.resetting,
      slotsBlocked: count.blocked,
      slotsQuarantined: count.quarantined,
    };
  }
}

export function refOf(info: SandboxInfo): SandboxRef {
  return { id: info.id, name: info.name };
}
