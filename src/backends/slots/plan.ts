import type { SandboxPhase, SandboxTemplate } from "../types.ts";

/**
 * The pure planner of the pool loop (stepped by the embedded pool manager and the controller's SandboxPool
 * reconciler): from what is observed, which sandboxes to create and which to terminate. It never terminates a sandbox that
 * still has leased slots, except one that already failed or is gone. A sandbox near its hard lifetime is replaced
 * like one on an old template: a new one is started, and the old one goes once its slots are given back.
 */
export interface ObservedSandbox {
  name: string;
  phase: SandboxPhase;
  templateHash: string;
  /** Absent: the pool's image. */
  image?: string;
  leasedSlots: number;
  createdAt: Date;
}

export interface ImageWaiters {
  count: number;
  /** When the oldest of them began to wait: among images with equal shares, the longest-waiting gets a sandbox first. */
  since: number;
}

export interface WarmImage {
  sandboxes: number;
  lastUsedAt: number;
}

export interface PlanInput {
  observed: readonly ObservedSandbox[];
  /** The current template hash of the pool's image. */
  templateHash: string;
  /** The pool's image (spec.image): `min` applies to it, and sandboxes and waiters that name none are on it. */
  image?: string;
  /** The current template hash of another image's sandboxes (templateForImage); absent: every sandbox is on the pool's image. */
  templateHashOf?: (image: string) => string;
  min: number;
  max: number;
  slotsPerSandbox: number;
  /** All acquirers waiting, whatever their image. */
  waitingAcquirers: number;
  /** How the waiters split by image, with when the oldest of each began to wait; absent: all on the pool's image. */
  waitingByImage?: ReadonlyMap<string, ImageWaiters>;
  /** Sandboxes to replace: a slot failed its reset, or the sandbox was found gone. */
  replace: ReadonlySet<string>;
  inFlightCreates: number;
  /** How the creates in flight split by image; absent: all on the pool's image. */
  inFlightByImage?: ReadonlyMap<string, number>;
  maxConcurrentCreates: number;
  /**
   * Images to keep warm without demand (used recently, or named by a job's image histogram): how many sandboxes,
   * and when the image was last used. Idle sandboxes of the least recently used images are evicted first.
   */
  warmImages?: ReadonlyMap<string, WarmImage>;
  /** Whether idle surplus may go now (callers gate it with a cooldown after the last waiter). */
  allowScaleDown: boolean;
  /** The template's hard lifetime (0: none) and the clock: sandboxes near it are replaced before it. */
  lifetimeSeconds: number;
  now: number;
}

export type TerminateReason = "failed" | "terminated" | "replace" | "stale" | "expiring" | "evicted" | "surplus";

/** How long before its lifetime a sandbox is replaced: a quarter of it, at most 15 minutes. */
const expiryMarginMs = (lifetimeSeconds: number) => Math.min(lifetimeSeconds * 250, 15 * 60_000);

/** Whether a sandbox is in the last stretch of its lifetime: no new work should start on it. */
export function expiresSoon(createdAt: Date, lifetimeSeconds: number, now: number): boolean {
  return lifetimeSeconds > 0 && now - createdAt.getTime() >= lifetimeSeconds * 1000 - expiryMarginMs(lifetimeSeconds);
}

/** Which free slot to hand out first: 0 for a current sandbox, higher for stale (1) and expiring (2) ones. */
export function drainRank(
  sandbox: { templateHash: string; createdAt: Date },
  template: Pick<SandboxTemplate, "templateHash" | "lifetimeSeconds">,
  now: number,
): number {
  return (sandbox.templateHash === template.templateHash ? 0 : 1) + (expiresSoon(sandbox.createdAt, template.lifetimeSeconds, now) ? 2 : 0);
}

export interface PlanOutput {
  create: number;
  /** The image of each create (`create` entries), fairest first. */
  creates: string[];
  terminate: { name: string; reason: TerminateReason }[];
  /** Healthy sandboxes wanted on the current templates, over all images (for status). */
  desired: number;
  /** Sandboxes to replace (old template, near their lifetime) that still hold leases: they drain, then go. */
  draining: string[];
  /**
   * Busy sandboxes of an image over its fair share while another image waits with no room: they take no new
   * leases, so they empty and are evicted, and a waiter for a new image never starves behind a busy one.
   */
  evicting: string[];
}

interface ImageState {
  healthy: ObservedSandbox[];
  /** Leased, or not ready yet: not to be evicted or scaled down. */
  fixed: number;
  leased: number;
  waiting: number;
  waitingSince: number;
  inFlight: number;
  warm: number;
  lastUsedAt: number;
}

/**
 * Per image: sandboxes wanted for the leases and waiters of that image, first shared fairly within `max` (each
 * round gives one more sandbox to the image with the fewest, the longest-waiting first), then warm floors (`min`
 * for the pool's image, `warmImages`) with what room is left, most recently used first. Idle sandboxes beyond
 * their image's share are evicted least-recently-used first when another image needs the room, and otherwise go
 * as surplus when scale-down is allowed.
 */
export function planSandboxes(input: PlanInput): PlanOutput {
  const poolImage = input.image ?? "";
  const imageOf = (sandbox: ObservedSandbox) => sandbox.image ?? poolImage;
  const hashOf = (image: string) =>
    image === poolImage || input.templateHashOf === undefined ? input.templateHash : input.templateHashOf(image);
  const images = new Map<string, ImageState>();
  const stateOf = (image: string): ImageState => {
    let state = images.get(image);
    if (state === undefined) {
      const warm = input.warmImages?.get(image);
      state = {
        healthy: [],
        fixed: 0,
        leased: 0,
        waiting: 0,
        waitingSince: Infinity,
        inFlight: 0,
        warm: Math.max(image === poolImage ? input.min : 0, warm?.sandboxes ?? 0),
        lastUsedAt: warm?.lastUsedAt ?? -Infinity,
      };
      images.set(image, state);
    }
    return state;
  };
  stateOf(poolImage);
  for (const image of input.warmImages?.keys() ?? []) stateOf(image);
  for (const [image, waiters] of input.waitingByImage ?? new Map([[poolImage, { count: input.waitingAcquirers, since: input.now }]])) {
    const state = stateOf(image);
    state.waiting = waiters.count;
    state.waitingSince = waiters.since;
  }
  for (const [image, count] of input.inFlightByImage ?? new Map([[poolImage, input.inFlightCreates]])) stateOf(image).inFlight = count;

  const terminate: PlanOutput["terminate"] = [];
  const draining: string[] = [];
  let alive = 0;
  for (const sandbox of input.observed) {
    if (sandbox.phase === "failed" || sandbox.phase === "terminated") {
      terminate.push({ name: sandbox.name, reason: sandbox.phase });
      continue;
    }
    const state = stateOf(imageOf(sandbox));
    state.leased += sandbox.leasedSlots;
    alive++;
    const reason: TerminateReason | undefined = input.replace.has(sandbox.name)
      ? "replace"
      : sandbox.templateHash !== hashOf(imageOf(sandbox))
        ? "stale"
        : expiresSoon(sandbox.createdAt, input.lifetimeSeconds, input.now)
          ? "expiring"
          : undefined;
    if (reason === undefined) {
      state.healthy.push(sandbox);
      if (sandbox.leasedSlots > 0 || sandbox.phase !== "ready") state.fixed++;
    } else if (sandbox.leasedSlots === 0) {
      terminate.push({ name: sandbox.name, reason });
      alive--;
    } else {
      draining.push(sandbox.name);
    }
  }

  const slotsPerSandbox = Math.max(1, input.slotsPerSandbox);
  const capacity = Math.max(0, input.max - draining.length);
  const entries = [...images.entries()];
  const wanted = new Map(entries.map(([image, state]) => [image, Math.ceil((state.leased + state.waiting) / slotsPerSandbox)]));
  const current = (image: string) => images.get(image)!.healthy.length + images.get(image)!.inFlight;
  // The fair share of the demand, then what every image keeps (its busy and starting sandboxes), then warm floors.
  const longestWaiting = (a: string, b: string) => images.get(a)!.waitingSince - images.get(b)!.waitingSince || a.localeCompare(b);
  const mostRecent = (a: string, b: string) => images.get(b)!.lastUsedAt - images.get(a)!.lastUsedAt || a.localeCompare(b);
  const share = new Map(entries.map(([image]) => [image, 0]));
  fill(share, wanted, capacity, longestWaiting);
  const target = new Map(entries.map(([image, state]) => [image, Math.max(share.get(image)!, state.fixed)]));
  const floors = new Map(entries.map(([image, state]) => [image, Math.max(wanted.get(image)!, state.warm)]));
  fill(target, floors, capacity - sum(target.values()), mostRecent);

  const missing = new Map(entries.map(([image]) => [image, Math.max(0, target.get(image)! - current(image))]));
  let room = input.max - alive - input.inFlightCreates;
  const createBudget = input.maxConcurrentCreates - input.inFlightCreates;
  const idleBeyondTarget = (image: string): ObservedSandbox[] => {
    const state = images.get(image)!;
    const idle = state.healthy.filter((sandbox) => sandbox.phase === "ready" && sandbox.leasedSlots === 0).sort(byCreation);
    return idle.slice(0, Math.max(0, current(image) - target.get(image)!));
  };
  // Another image needs the room: idle sandboxes beyond their image's target go, least recently used image first.
  const evictable = [...images.keys()].sort((a, b) => -mostRecent(a, b)).flatMap(idleBeyondTarget);
  const evicted = new Set<string>();
  const toEvict = Math.min(sum(missing.values()), createBudget) - Math.max(0, room);
  for (const sandbox of evictable.slice(0, Math.max(0, toEvict))) {
    terminate.push({ name: sandbox.name, reason: "evicted" });
    evicted.add(sandbox.name);
    room++;
  }
  const creates: string[] = [];
  const planned = new Map(entries.map(([image]) => [image, current(image)]));
  const limits = new Map(entries.map(([image]) => [image, current(image) + missing.get(image)!]));
  const budget = Math.max(0, Math.min(room, createBudget));
  fill(planned, limits, budget, longestWaiting, (image) => creates.push(image));

  // Waiters still short of their share with no room left: busy sandboxes over their image's share stop taking leases.
  let short = entries.reduce(
    (total, [image, state]) => total + (state.waiting > 0 ? Math.max(0, share.get(image)! - planned.get(image)!) : 0),
    0,
  );
  const evicting: string[] = [];
  for (const [image, state] of entries) {
    const over = state.fixed - share.get(image)!;
    if (short <= 0 || over <= 0) continue;
    const busy = state.healthy.filter((sandbox) => sandbox.phase === "ready" && sandbox.leasedSlots > 0);
    busy.sort((a, b) => a.leasedSlots - b.leasedSlots || byCreation(a, b));
    for (const sandbox of busy.slice(0, Math.min(over, short))) {
      evicting.push(sandbox.name);
      short--;
    }
  }

  if (input.allowScaleDown && input.waitingAcquirers === 0) {
    const surplus = [...images.keys()].flatMap(idleBeyondTarget).filter((sandbox) => !evicted.has(sandbox.name));
    for (const sandbox of surplus.sort(byCreation)) terminate.push({ name: sandbox.name, reason: "surplus" });
  }
  return { create: creates.length, creates, terminate, desired: sum(target.values()), draining, evicting };
}

const byCreation = (a: ObservedSandbox, b: ObservedSandbox) => a.createdAt.getTime() - b.createdAt.getTime();

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/**
 * Water-filling: `budget` times, one more to the key with the lowest count still under its limit (ties by
 * `first`); `given` hears each key given one. Counts are changed in place.
 */
function fill(
  counts: Map<string, number>,
  limits: ReadonlyMap<string, number>,
  budget: number,
  first: (a: string, b: string) => number,
  given?: (key: string) => void,
): void {
  for (let left = budget; left > 0; left--) {
    let best: string | undefined;
    for (const [key, limit] of limits) {
      const count = counts.get(key) ?? 0;
      if (count >= limit) continue;
      const bestCount = best === undefined ? Infinity : counts.get(best)!;
      if (count < bestCount || (count === bestCount && first(key, best!) < 0)) best = key;
    }
    if (best === undefined) return;
    counts.set(best, counts.get(best)! + 1);
    given?.(best);
  }
}
