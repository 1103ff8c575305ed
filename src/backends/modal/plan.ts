import type { Logger as ModalLogger } from "modal";
import type { Logger } from "../../base/log.ts";
import type { SpawnPlan } from "../process.ts";
import type { SandboxInfo, SandboxTemplate } from "../types.ts";

/**
 * Pure pieces of the Modal backend: the tags that make create idempotent and state rebuildable, the exec argv
 * with its timeout, and the SDK-to-pino logger adapter.
 */
export const TAG = {
  managedBy: "hermes-managed-by",
  pool: "hermes-pool",
  templateHash: "hermes-template-hash",
  image: "hermes-image",
  name: "hermes-name",
  slots: "hermes-slots",
  createdAt: "hermes-created-at",
  /** The pool's slot workdir (SandboxTemplate.workdir), when it sets one: slots then see the image's root. */
  workdir: "hermes-slot-workdir",
} as const;
export const MANAGED_BY = "hermes-rollouts";

/** Tags to list one pool's sandboxes (the SDK ANDs them). */
export function poolSelector(pool: string): Record<string, string> {
  return { [TAG.managedBy]: MANAGED_BY, [TAG.pool]: pool };
}

export function sandboxTags(name: string, template: SandboxTemplate, createdAt: Date): Record<string, string> {
  return {
    ...poolSelector(template.pool),
    [TAG.templateHash]: template.templateHash,
    [TAG.image]: template.image,
    [TAG.name]: name,
    [TAG.slots]: String(template.slots),
    [TAG.createdAt]: createdAt.toISOString(),
    ...(template.workdir === undefined ? {} : { [TAG.workdir]: template.workdir }),
  };
}

/** What `list` can say about a running sandbox from its tags alone; undefined when they are not ours. */
export function infoFromTags(id: string, tags: Record<string, string>): SandboxInfo | undefined {
  const pool = tags[TAG.pool];
  const name = tags[TAG.name];
  const slots = Number(tags[TAG.slots]);
  if (tags[TAG.managedBy] !== MANAGED_BY || pool === undefined || name === undefined || !Number.isInteger(slots)) return undefined;
  const createdAt = new Date(tags[TAG.createdAt] ?? 0);
  const image = tags[TAG.image];
  return {
    id,
    name,
    pool,
    phase: "ready",
    slots,
    templateHash: tags[TAG.templateHash] ?? "",
    ...(image === undefined ? {} : { image }),
    createdAt,
  };
}

/** Modal names: at most 64 of [A-Za-z0-9._-] (the SDK rejects others before any RPC). */
export function isValidSandboxName(name: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(name);
}

/** Modal wants whole seconds for sandbox lifetimes and exec timeouts. */
export function wholeSecondsMs(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000)) * 1000;
}

/** Our bound on server-directed throttling waits per call; the SDK's own default is no bound at all. */
export const DEFAULT_MAX_THROTTLE_WAIT_SECS = 60;

/**
 * MODAL_MAX_THROTTLE_WAIT read as the SDK reads it (whole seconds, 0 turns throttle retries off). An empty or
 * unusable value keeps our bound: passed on as NaN it would let a throttled call retry forever.
 */
export function maxThrottleWaitSecs(env: string | undefined): number {
  const parsed = env === undefined || env.trim() === "" ? Number.NaN : Number.parseInt(env, 10);
  return Number.isNaN(parsed) || parsed < 0 ? DEFAULT_MAX_THROTTLE_WAIT_SECS : parsed;
}

/** Slack for the SDK-side exec deadline over coreutils `timeout`, which does the precise kill (exit 124). */
export const EXEC_DEADLINE_SLACK_MS = 5_000;

/**
 * 128 + SIGKILL: an exec whose sandbox was terminated, and also coreutils `timeout` after it had to SIGKILL a
 * command that ignored its SIGTERM.
 */
export const KILLED_EXIT_CODE = 137;

/**
 * The argv run through `sb.exec`: coreutils `timeout` around the slot plan, so a timeout is exit 124 with
 * sub-second precision; under bwrap the whole pid namespace goes with it.
 */
export function execArgv(plan: SpawnPlan, timeoutMs: number): string[] {
  const seconds = (Math.max(timeoutMs, 1) / 1000).toFixed(3);
  return ["timeout", "-k", "2", seconds, plan.file, ...plan.args];
}

/**
 * Creates every slot workspace and the cache in one exec (and the mount points slots need in the container's root,
 * absolute), and prints the sandbox root as its processes see it.
 */
export function prepareArgv(slots: number, mountPoints: readonly string[] = []): string[] {
  const dirs = ["cache", ...Array.from({ length: slots }, (_, slot) => `slots/${slot}`), ...mountPoints];
  return ["bash", "-c", 'mkdir -p -- "$@" && pwd -P', "prepare", ...dirs];
}

/** The SDK logs `(message, key, value, key, value…)`; pino wants an object. */
export function sdkLogger(log: Logger): ModalLogger {
  const adapt =
    (level: "debug" | "info" | "warn" | "error") =>
    (message: string, ...args: unknown[]): void => {
      const fields: Record<string, unknown> = {};
      for (let index = 0; index + 1 < args.length; index += 2) fields[String(args[index])] = args[index + 1];
      log[level](fields, message);
    };
  return { debug: adapt("debug"), info: adapt("info"), warn: adapt("warn"), error: adapt("error") };
}
