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
  leasedSlots: number;
  createdAt: Date;
}

export interface PlanInput {
  observed: readonly ObservedSandbox[];
  templateHash: string;
  min: number;
  max: number;
  slotsPerSandbox: number;
  waitingAcquirers: number;
  /** Sandboxes to replace: a slot failed its reset, or the sandbox was found gone. */
  replace: ReadonlySet<string>;
  inFlightCreates: number;
  maxConcurrentCreates: number;
  /** Whether idle surplus may go now (callers gate it with a cooldown after the last waiter). */
  allowScaleDown: boolean;
  /** The template's hard lifetime (0: none) and the clock: sandboxes near it are replaced before it. */
  lifetimeSeconds: number;
  now: number;
}

export type TerminateReason = "failed" | "terminated" | "replace" | "stale" | "expiring" | "surplus";

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
  terminate: { name: string; reason: TerminateReason }[];
  /** Healthy sandboxes wanted on the current template (for status). */
  desired: number;
  /** Sandboxes to replace (old template, near their lifetime) that still hold leases: they drain, then go. */
  draining: string[];
}

export function planSandboxes(input: PlanInput): PlanOutput {
  const terminate: PlanOutput["terminate"] = [];
  const draining: string[] = [];
  const healthy: ObservedSandbox[] = [];
  let alive = 0;
  let leased = 0;
  for (const sandbox of input.observed) {
    if (sandbox.phase === "failed" || sandbox.phase === "terminated") {
      terminate.push({ name: sandbox.name, reason: sandbox.phase });
      continue;
    }
    leased += sandbox.leasedSlots;
    const reason: TerminateReason | undefined = input.replace.has(sandbox.name)
      ? "replace"
      : sandbox.templateHash !== input.templateHash
        ? "stale"
        : expiresSoon(sandbox.createdAt, input.lifetimeSeconds, input.now)
          ? "expiring"
          : undefined;
    if (reason === undefined) {
      healthy.push(sandbox);
      alive++;
    } else if (sandbox.leasedSlots === 0) {
      terminate.push({ name: sandbox.name, reason });
    } else {
      draining.push(sandbox.name);
      alive++;
    }
  }

  const slotsPerSandbox = Math.max(1, input.slotsPerSandbox);
  const wanted = Math.ceil((leased + input.waitingAcquirers) / slotsPerSandbox);
  const desired = Math.max(input.min, Math.min(input.max, wanted));
  const current = healthy.length + input.inFlightCreates;
  const room = input.max - alive - input.inFlightCreates;
  const createBudget = input.maxConcurrentCreates - input.inFlightCreates;
  const create = Math.max(0, Math.min(desired - current, createBudget, room));

  if (input.allowScaleDown && input.waitingAcquirers === 0 && current > desired) {
    const idle = healthy
      .filter((sandbox) => sandbox.phase === "ready" && sandbox.leasedSlots === 0)
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    for (const sandbox of idle.slice(0, current - desired)) terminate.push({ name: sandbox.name, reason: "surplus" });
  }
  return { create, terminate, desired, draining };
}
