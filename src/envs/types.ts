/**
 * The environment contract: how a dataset row becomes a task in a leased slot, a prompt for the agent, and a score.
 * Environments see a slot only through `SlotExec` (no leases, no backends). Every path a slot command uses comes
 * from HERMES_WORKSPACE / HERMES_CACHE_DIR, which the slot layer sets as the command sees them (/workspace and
 * /cache under bubblewrap, host paths otherwise). A failure that is not the agent's is an `InfrastructureError`
 * (src/base/errors.ts): retried on another slot, never scored.
 */
import { z } from "zod";
import type { ExecRequest, ExecResult } from "../backends/types.ts";
import { errorMessage, InfrastructureError, InvalidItemError, isSandboxError } from "../base/errors.ts";

/** The narrow view of a leased slot an environment gets; the runner's LeasedSlot satisfies it. */
export interface SlotExec {
  /** Sandbox id and slot index: for logs, and to name per-slot state in the shared cache. */
  readonly sandbox: string;
  readonly slot: number;
  exec(request: Omit<ExecRequest, "slot">): Promise<ExecResult>;
  /** Paths relative to the slot workspace. */
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array | string): Promise<void>;
}

export interface PromptMessages {
  system: string;
  user: string;
}

export interface SetupResult {
  /** Where the agent works, relative to the slot workspace ("." for the workspace itself). */
  workdir: string;
  durationMs: number;
}

/** Bounded summary of a verification (no full logs): a few hundred bytes per chunk at most. */
export type VerificationDetails = Record<string, unknown>;

export interface Verification {
  /** 0..1 */
  score: number;
  passed: boolean;
  details: VerificationDetails;
  durationMs: number;
}

/** Parses a dataset row with an environment's item schema; a bad row is an InvalidItemError naming the environment. */
export function parseRow<Item>(environment: string, schema: z.ZodType<Item>, row: unknown): Item {
  const parsed = schema.safeParse(row);
  if (!parsed.success) throw new InvalidItemError(`invalid ${environment} row: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** An environment's own command that threw: sandbox errors and aborts pass through, the rest is infrastructure. */
export function asInfrastructureError(phase: "setup" | "verify", error: unknown, what = `${phase} failed`): Error {
  if (isSandboxError(error) || error instanceof InfrastructureError) return error;
  if (error instanceof Error && error.name === "AbortError") return error;
  return new InfrastructureError(phase, `${what}: ${errorMessage(error)}`, { cause: error });
}

export interface Environment<Item = unknown> {
  readonly name: string;
  readonly itemSchema: z.ZodType<Item>;
  /** Validates and normalises one dataset row; throws InvalidItemError. */
  parseItem(row: unknown): Item;
  /** Stable id of an item (logs, scored metadata, resume). */
  itemId(item: Item): string;
  /** Prepares the slot workspace for the item. Throws InfrastructureError / SandboxError on failure. */
  setup(item: Item, slot: SlotExec, signal?: AbortSignal): Promise<SetupResult>;
  prompt(item: Item): PromptMessages;
  /** Whether a dataset row is one this environment can work on; rows it refuses are left out of the job. */
  keepsRow?(row: unknown): boolean;
  /** The longest timeout of a command the environment runs itself (setup, install, checks), in seconds. */
  readonly longestStepSeconds: number;
  /** A trajectory without a tool call scores 0 unverified: the task cannot pass untouched (SWE-smith's rule). */
  readonly zeroWithoutToolCalls?: boolean;
  /** Runs the task's checks in the slot and scores them. Task failures are a score, not an error. */
  verify(item: Item, slot: SlotExec, signal?: AbortSignal): Promise<Verification>;
  /**
   * Shell commands (run in the slot workspace, in order) that solve the item, when the item carries its
   * solution (SWE-smith's gold patch). The built-in `oracle` policy sends them as terminal tool calls.
   */
  oracleCommands(item: Item): string[] | undefined;
}

/** One registered environment kind: a config schema and a constructor from a parsed config. */
export interface EnvironmentFactory<Config = unknown, Item = unknown> {
  readonly name: string;
  readonly configSchema: z.ZodType<Config>;
  fromConfig(config: Config): Environment<Item>;
}
