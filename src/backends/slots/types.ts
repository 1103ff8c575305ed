/** The slot layer's public shapes: what a lease is, how a pool is configured, what it counts. */
import type { SandboxBackend, SandboxRef, SandboxTemplate } from "../types.ts";
import type { LeaseStore } from "./lease-store.ts";
import type { Clock } from "../../base/clock.ts";

export interface Lease {
  readonly id: string;
  readonly holder: string;
  readonly sandbox: SandboxRef;
  /** The image of the lease's sandbox. */
  readonly image: string;
  /** The placement key the lease was acquired with (a group's id): the group's other leases prefer its sandbox. */
  readonly group?: string;
  readonly slot: number;
  readonly expiresAt: number;
}

export interface SlotPoolStats {
  slotsTotal: number;
  slotsLeased: number;
  slotsFree: number;
  slotsResetting: number;
  slotsBlocked: number;
  slotsQuarantined: number;
  waiting: number;
}

export interface SlotPoolOptions {
  backend: SandboxBackend;
  template: SandboxTemplate;
  leaseTtlMs: number;
  store?: LeaseStore;
  clock?: Clock;
  resetTimeoutMs?: number;
  /** Called with each acquire's wait, for a latency histogram. */
  onAcquire?: (latencyMs: number, outcome: "acquired" | "timeout" | "aborted") => void;
}
