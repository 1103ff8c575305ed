import type { SandboxPhase } from "../types.ts";

/**
 * The pure planner behind both the embedded pool manager and the controller's SandboxPool reconciler:
 * from what is observed, which sandboxes to create and which to terminate. It never terminates a sandbox that
 * still has leased slots, except one that already failed or is gone.
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
}

export type TerminateReason = "failed" | "terminated" | "replace" | "stale" | "surplus";

export interface PlanOutput {
  create: number;
  terminate: { name: string; reason: TerminateReason }[];
  /** Healthy sandboxes wanted on the current template (for status). */
  desired: number;
  /** Sandboxes of an old template that still hold leases (they drain, then go). */
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
      : sandbox.templateHash !== input.templateHash ? "stale" : undefined;
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
