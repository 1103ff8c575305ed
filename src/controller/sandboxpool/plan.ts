import { createHash } from "node:crypto";
import { parseQuantity, type SandboxPoolSpec } from "../../api/index.ts";
import type { SandboxInfo, SandboxTemplate } from "../../backends/types.ts";

/**
 * Which sandboxes to create and terminate, as a pure function of what the backend and the lease table report.
 * (The slot layer's own planner had not landed when this was written; this one covers what the reconciler needs.)
 */

export function poolTemplate(poolKey: string, spec: SandboxPoolSpec): SandboxTemplate {
  const shape = {
    image: spec.image,
    slots: spec.slotsPerSandbox,
    cpu: parseQuantity(spec.resources.cpu),
    memoryMiB: Math.round(parseQuantity(spec.resources.memory) / 2 ** 20),
    lifetimeSeconds: spec.sandboxLifetimeSeconds,
    idleTimeoutSeconds: spec.idleTimeoutSeconds,
  };
  const templateHash = createHash("sha256").update(JSON.stringify(shape)).digest("hex").slice(0, 10);
  return { pool: poolKey, ...shape, templateHash };
}

export interface PoolObservation {
  sandboxes: readonly SandboxInfo[];
  /** Leased slots per sandbox id. */
  leased: ReadonlyMap<string, number>;
  /** Acquire requests waiting for a free slot: demand beyond the leased slots. */
  waitingAcquires: number;
  now: number;
}

export interface Termination {
  sandbox: SandboxInfo;
  reason: "Failed" | "Outdated" | "Expiring" | "ScaleDown";
}

export interface PoolPlan {
  /** How many sandboxes to create now (names are chosen by the caller). */
  create: number;
  terminate: Termination[];
  /** Sandboxes the pool wants once the plan is applied. */
  desired: number;
  /** Outdated sandboxes kept until their leased slots are released. */
  draining: number;
}

/** Replace a sandbox this long before its lifetime ends, so no trajectory runs into the hard stop. */
const EXPIRY_MARGIN_MS = 60_000;

export function planPool(spec: SandboxPoolSpec, template: SandboxTemplate, obs: PoolObservation): PoolPlan {
  const leasedOn = (s: SandboxInfo) => obs.leased.get(s.id) ?? 0;
  const live = obs.sandboxes.filter((s) => s.phase === "starting" || s.phase === "ready");
  const terminate: Termination[] = obs.sandboxes.filter((s) => s.phase === "failed").map((sandbox) => ({ sandbox, reason: "Failed" as const }));

  const expiring = (s: SandboxInfo) => s.createdAt.getTime() + spec.sandboxLifetimeSeconds * 1000 - EXPIRY_MARGIN_MS <= obs.now;
  const stale = live.filter((s) => s.templateHash !== template.templateHash || expiring(s));
  let draining = 0;
  for (const sandbox of stale) {
    // Rollover never kills a leased slot: a stale sandbox with leases drains first.
    if (leasedOn(sandbox) > 0) draining++;
    else terminate.push({ sandbox, reason: sandbox.templateHash !== template.templateHash ? "Outdated" : "Expiring" });
  }
  const current = live.filter((s) => !stale.includes(s));

  const leasedTotal = [...obs.leased.values()].reduce((a, b) => a + b, 0);
  const demandSandboxes = Math.ceil((leasedTotal + obs.waitingAcquires) / spec.slotsPerSandbox);
  const desired = Math.min(spec.maxSandboxes, Math.max(spec.minSandboxes, demandSandboxes));

  // Scale down idle current sandboxes beyond the desired count, newest first (older ones have warm caches).
  const idle = current.filter((s) => s.phase === "ready" && leasedOn(s) === 0).sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const excess = Math.max(0, current.length - desired);
  for (const sandbox of idle.slice(0, excess)) terminate.push({ sandbox, reason: "ScaleDown" });

  const starting = current.filter((s) => s.phase === "starting").length;
  const room = Math.min(
    desired - current.length,
    spec.maxConcurrentCreates - starting,
    spec.maxSandboxes - current.length - draining,
  );
  return { create: Math.max(0, room), terminate, desired, draining };
}
