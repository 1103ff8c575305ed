/**
 * The one interface every sandbox backend (local, modal, nomad, kubernetes) implements. Slots and leases are built on top
 * of it in a backend-agnostic layer; nothing above this file knows which backend runs a command.
 *
 * Layout inside every sandbox, whatever the backend:
 *   <root>/slots/<n>   the workspace of slot n (wiped on reset)
 *   <root>/cache       shared by the slots of one sandbox (e.g. bare git repositories), guarded by flock
 * A slot command sees its workspace at SLOT_WORKSPACE and the cache, read-only, at SANDBOX_CACHE when isolation
 * is on; it always gets both paths, as it sees them, in HERMES_WORKSPACE and HERMES_CACHE_DIR. Only a trusted
 * step (ExecRequest.trusted) writes the cache.
 */

export type BackendKind = "local" | "modal" | "nomad" | "kubernetes";

export const SLOT_WORKSPACE = "/workspace";
export const SANDBOX_CACHE = "/cache";

/** What every sandbox of a pool looks like; `templateHash` changes when any field does (rollover). */
export interface SandboxTemplate {
  /** Pool key: `namespace/name` in a cluster, the pool's name otherwise. */
  pool: string;
  image: string;
  slots: number;
  cpu: number;
  memoryMiB: number;
  lifetimeSeconds: number;
  idleTimeoutSeconds: number;
  env?: Record<string, string>;
  /**
   * Under bwrap, where each slot's workspace is mounted (SandboxPool spec.slotWorkdir); unset: a local OCI image's
   * WorkingDir, else SLOT_WORKSPACE. On Modal, set means slots see the container's root (the image).
   */
  workdir?: string;
  templateHash: string;
}

export interface SandboxRef {
  id: string;
  name: string;
}

export type SandboxPhase = "starting" | "ready" | "failed" | "terminated";

/** Why a starting sandbox will not become ready by waiting (the kubernetes backend reads it from the kubelet and scheduler). */
export type SandboxStuckReason = "ImagePullFailed" | "Unschedulable" | "ContainerConfigError";

export interface SandboxInfo extends SandboxRef {
  pool: string;
  phase: SandboxPhase;
  slots: number;
  templateHash: string;
  /** The image it was created from, as the backend stored it at create (absent on sandboxes from before that). */
  image?: string;
  createdAt: Date;
  message?: string;
  /** Set on a starting sandbox that waits on something only a fix can clear; the pool's Ready condition names it. */
  stuck?: SandboxStuckReason;
}

export interface ExecRequest {
  slot: number;
  /** A string runs under `bash -c`; an array is an argv. */
  command: string | readonly string[];
  /** Relative to the slot workspace (default: the workspace itself). */
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs: number;
  /** Per stream; the tail is kept, as the original terminal tool does. */
  maxOutputBytes?: number;
  stdin?: string;
  /**
   * An environment's own step that fills the shared cache (e.g. a git fetch into a bare repository): under
   * isolation it sees the cache read-write and no workspace (it takes no cwd), otherwise confined as a slot
   * command. It keeps the sandbox's network whatever the pool's policy (fetch and install reach remotes and package
   * indexes before the agent runs). Set only by environment code, never from a model's tool call (src/rollout/tools.ts
   * builds those).
   */
  trusted?: boolean;
}

export interface ExecResult {
  /** 124 when the command hit its timeout, as in the original terminal tool. */
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  truncated: boolean;
}

import type { SlotLimits } from "./slot-limits.ts";

export type IsolationMode = "bwrap" | "none";

/**
 * Slot commands' network under bwrap: "none" is a namespace of their own (loopback only), "egress" one with a route
 * out that cannot reach the host's loopback (egress.ts), "host" the sandbox's.
 */
export type NetworkPolicy = "none" | "egress" | "host";

/** A pool's isolation setting (SandboxPool spec.isolation, its limits resolved: isolationPolicy in factory.ts). */
export interface IsolationPolicy {
  mode: IsolationMode;
  network: NetworkPolicy;
  slotLimits?: SlotLimits;
}

export interface SandboxHealth {
  ok: boolean;
  isolation: IsolationMode;
  message?: string;
}

/** A failed call throws a `SandboxError` (src/base/errors.ts), whose kind tells retry, replace or surface apart. */
export interface SandboxBackend {
  readonly kind: BackendKind;
  /**
   * Idempotent by name: creating an existing live sandbox returns it. `signal` ends a create still waiting for its
   * sandbox (the pool is stopping); what it already started stays listed, for the pool's sweep to terminate.
   */
  create(name: string, template: SandboxTemplate, options?: { signal?: AbortSignal }): Promise<SandboxInfo>;
  /** The pool's sandboxes as the backend sees them, to rebuild state after a restart. */
  list(pool: string): Promise<SandboxInfo[]>;
  exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult>;
  /** Paths are relative to the slot workspace; escaping it is a configuration error. */
  readFile(sandbox: SandboxRef, slot: number, path: string): Promise<Uint8Array>;
  writeFile(sandbox: SandboxRef, slot: number, path: string, data: Uint8Array | string): Promise<void>;
  /** Wipes the slot's workspace (the directory stays) and kills what still runs in it. */
  resetSlot(sandbox: SandboxRef, slot: number): Promise<void>;
  health(sandbox: SandboxRef): Promise<SandboxHealth>;
  /** Idempotent: terminating a gone sandbox succeeds. */
  terminate(sandbox: SandboxRef): Promise<void>;
  close(): Promise<void>;
}
