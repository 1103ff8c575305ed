import { execFile } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { SANDBOX_CACHE, SLOT_WORKSPACE, type IsolationMode, type NetworkPolicy } from "./types.ts";
import { SandboxError } from "../base/errors.ts";

/**
 * How one slot command is spawned. Pure: the same function serves the local backend, the sandbox server and
 * (through Modal's exec) Modal sandboxes, which only differ in the sandbox root and where the process starts.
 *
 * With "bwrap" the command sees only its slot workspace (read-write, at /workspace, also the cwd), the sandbox
 * cache at /cache (read-only), read-only system dirs, a private size-capped /tmp, fresh /proc and /dev, its own
 * pid/ipc/uts namespaces and, under the network policy "none", its own network namespace (only a loopback of its
 * own: neither the host's 127.0.0.1 services nor the sandbox server are reachable). It dies with its parent, and
 * everything it started dies with it (the pid namespace's init ends when the command does); it holds no capability
 * and never runs as root (see SlotUser). A trusted step (ExecRequest.trusted) is confined the same way but sees the
 * cache read-write and no workspace (an empty /workspace of its own, a tmpfs where it can build what slots will see
 * at the same paths) and keeps the sandbox's network: nothing a slot left behind can steer what it writes into the
 * cache. With "none" it runs as a plain process in the slot directory, and nothing is enforced.
 */
export interface SlotCommandSpec {
  /** The sandbox root on the machine that spawns: it holds `slots/<n>` and `cache`. */
  sandboxRoot: string;
  slot: number;
  command: string | readonly string[];
  /** Relative to the workspace; must stay inside it. */
  cwd?: string;
  /** Applied over the base environment (template env first, then the request's). */
  env?: Record<string, string>;
  isolation: IsolationMode;
  /** Who a bwrap slot runs as, from probeIsolation; callers that do not probe (Modal) get "spawner". */
  slotUser?: SlotUser | undefined;
  /** An environment's cache-writing step (see ExecRequest.trusted); it takes no cwd. */
  trusted?: boolean | undefined;
  /** The pool's policy for slot commands; default "none" (a network namespace of their own). */
  network?: NetworkPolicy | undefined;
}

/** The size cap of a bwrap slot's private /tmp (a tmpfs, so it counts against the sandbox's memory). */
export const SLOT_TMP_BYTES = 1024 ** 3;

/** The uid and gid slot commands run as under bwrap. */
export const SLOT_UID = 1000;
export const SLOT_GID = 1000;

/**
 * How a bwrap slot stops being root; every capability is dropped in all three.
 * - "user-namespace": bwrap, started by a non-root spawner, makes a user namespace where the slot is SLOT_UID.
 * - "setpriv": bwrap is started by root and keeps only what setpriv needs to switch to SLOT_UID on the host
 *   (then nothing, with an empty bounding set). A user namespace does not help a root spawner: its SLOT_UID
 *   maps to host uid 0, which owns /etc/shadow; and bwrap started as SLOT_UID cannot reach a sandbox root
 *   under a directory private to root (mkdtemp, /root).
 * - "spawner": the spawner's uid (a setuid bwrap without user namespaces, or a caller that did not probe).
 */
export type SlotUser = "user-namespace" | "setpriv" | "spawner";

/** The host owner of workspace and cache files, when the slot runs as another uid than the trusted side. */
export function slotFileOwner(isolation: IsolationMode, slotUser: SlotUser | undefined): { uid: number; gid: number } | undefined {
  return isolation === "bwrap" && slotUser === "setpriv" ? { uid: SLOT_UID, gid: SLOT_GID } : undefined;
}

const SLOT_USER_ARGS: Record<SlotUser, string[]> = {
  "user-namespace": ["--unshare-user", "--uid", String(SLOT_UID), "--gid", String(SLOT_GID), "--cap-drop", "ALL"],
  setpriv: ["--cap-drop", "ALL", ...["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"].flatMap((cap) => ["--cap-add", cap])],
  spawner: ["--cap-drop", "ALL"],
};
const SETPRIV = ["setpriv", `--reuid=${SLOT_UID}`, `--regid=${SLOT_GID}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"];

export interface SpawnPlan {
  file: string;
  args: string[];
  /** Where the spawned process starts (the slot directory itself without isolation). */
  cwd: string;
  /** The whole environment: the host's is never inherited, so its secrets do not leak into slots. */
  env: Record<string, string>;
}

export const BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const READ_ONLY_SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"];

export function slotDirectory(sandboxRoot: string, slot: number): string {
  return posix.join(sandboxRoot, "slots", String(slot));
}

export function cacheDirectory(sandboxRoot: string): string {
  return posix.join(sandboxRoot, "cache");
}

const OUTSIDE_WORKSPACE = "is outside the slot workspace";

export function isOutsideWorkspace(error: unknown): boolean {
  return error instanceof SandboxError && error.kind === "configuration" && error.message.endsWith(OUTSIDE_WORKSPACE);
}

/** Joins a request path onto a workspace; a path escaping it (`..`, absolute elsewhere) is a configuration error. */
export function resolveInsideWorkspace(workspace: string, relative: string | undefined): string {
  if (relative === undefined || relative === "" || relative === ".") return workspace;
  const candidate =
    posix.isAbsolute(relative) && relative.startsWith(`${SLOT_WORKSPACE}/`)
      ? posix.join(workspace, relative.slice(SLOT_WORKSPACE.length))
      : posix.resolve(workspace, relative);
  if (candidate !== workspace && !candidate.startsWith(`${workspace}/`)) {
    throw new SandboxError("configuration", `path ${JSON.stringify(relative)} ${OUTSIDE_WORKSPACE}`);
  }
  return candidate;
}

export function buildSlotCommand(spec: SlotCommandSpec): SpawnPlan {
  const hostWorkspace = slotDirectory(spec.sandboxRoot, spec.slot);
  const hostCache = cacheDirectory(spec.sandboxRoot);
  const isolated = spec.isolation === "bwrap";
  const workspace = isolated ? SLOT_WORKSPACE : hostWorkspace;
  const cacheDir = isolated ? SANDBOX_CACHE : hostCache;
  if (spec.trusted === true && spec.cwd !== undefined) throw new SandboxError("configuration", "a trusted step takes no cwd");
  const cwd = resolveInsideWorkspace(workspace, spec.cwd);
  const env: Record<string, string> = {
    PATH: BASE_PATH,
    HOME: workspace,
    LANG: "C.UTF-8",
    TERM: "dumb",
    ...spec.env,
    HERMES_WORKSPACE: workspace,
    HERMES_CACHE_DIR: cacheDir,
  };
  const argv = typeof spec.command === "string" ? ["bash", "-c", spec.command] : [...spec.command];
  const [first, ...rest] = argv;
  if (first === undefined) throw new SandboxError("configuration", "empty command");
  if (!isolated) return { file: first, args: rest, cwd, env };
  const slotUser = spec.slotUser ?? "spawner";
  // Trusted steps fetch from the task's remote; environment steps before the agent (install) reach package indexes.
  const ownNetwork = (spec.network ?? "none") === "none" && spec.trusted !== true;
  const args = [
    ...SLOT_USER_ARGS[slotUser],
    "--die-with-parent",
    "--new-session",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    ...(ownNetwork ? ["--unshare-net"] : []),
    "--hostname",
    `slot-${spec.slot}`,
    ...READ_ONLY_SYSTEM_DIRS.flatMap((dir) => ["--ro-bind-try", dir, dir]),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // Writable by the slot user (it is not the uid that starts bwrap when root drops to it), sticky as a /tmp is.
    "--perms",
    "1777",
    "--size",
    String(SLOT_TMP_BYTES),
    "--tmpfs",
    "/tmp",
    ...(spec.trusted === true
      ? ["--perms", "1777", "--tmpfs", SLOT_WORKSPACE, "--bind", hostCache, SANDBOX_CACHE]
      : ["--bind", hostWorkspace, SLOT_WORKSPACE, "--ro-bind", hostCache, SANDBOX_CACHE]),
    "--chdir",
    cwd,
    "--",
    ...(slotUser === "setpriv" ? SETPRIV : []),
    ...argv,
  ];
  return { file: "bwrap", args, cwd: hostWorkspace, env };
}

export interface IsolationProbe {
  isolation: IsolationMode;
  /** Under bwrap, who slots run as: "user-namespace" when one is in use. */
  slotUser?: SlotUser;
  message?: string;
  /** Under bwrap, what is not limited per slot here (unenforcedLimits); health and the pool's status show it. */
  limits?: string;
}

const CGROUP_V2_CONTROLLERS = "/sys/fs/cgroup/cgroup.controllers";

/**
 * What a bwrap slot is not limited in on this host. Per-slot pids, memory and CPU would need a delegated cgroup v2
 * (none is used yet; the sandbox's own resources bound them all together), and the workspace has no size cap.
 */
export function unenforcedLimits(): string {
  const cgroup = !existsSync(CGROUP_V2_CONTROLLERS)
    ? "no cgroup v2 on this host"
    : isWritable("/sys/fs/cgroup")
      ? "cgroup v2 is delegated here but not used yet"
      : "cgroup v2 is not delegated to this process";
  return `no per-slot pids, memory or CPU limit (${cgroup}); no workspace size cap; /tmp capped at ${SLOT_TMP_BYTES / 1024 ** 3} GiB`;
}

function isWritable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Strongest first; "spawner" is the last resort (for root: uid 0 without capabilities, said in the message). */
function slotUserCandidates(): SlotUser[] {
  return process.getuid?.() === 0 ? ["setpriv", "spawner"] : ["user-namespace", "spawner"];
}

const ISOLATION_UNAVAILABLE = "bubblewrap unavailable, slots cannot be isolated";

/** The probe's refusal under "bwrap": pools show it as Isolated=False (ProbeFailed) and are not Ready. */
export function isIsolationUnavailable(error: unknown): boolean {
  return error instanceof SandboxError && error.kind === "configuration" && error.message.startsWith(ISOLATION_UNAVAILABLE);
}

/**
 * Tells whether bwrap works here, and as whom slots run, by running real slot commands under it (with the policy's
 * network namespace). Fails closed: under "bwrap" a failed probe throws (isIsolationUnavailable), never degrading
 * to "none", which only configuration asks for. A weaker slot user than the first candidate comes with a message.
 */
export async function probeIsolation(requested: IsolationMode, network: NetworkPolicy = "none"): Promise<IsolationProbe> {
  if (requested === "none") return { isolation: "none", message: "slot isolation disabled by configuration" };
  const root = await mkdtemp(join(tmpdir(), "hermes-bwrap-probe-"));
  try {
    await mkdir(slotDirectory(root, 0), { recursive: true });
    await mkdir(cacheDirectory(root), { recursive: true });
    const failures: string[] = [];
    for (const slotUser of slotUserCandidates()) {
      try {
        await runProbe(buildSlotCommand({ sandboxRoot: root, slot: 0, command: ["true"], isolation: "bwrap", slotUser, network }));
        const limits = unenforcedLimits();
        if (failures.length === 0) return { isolation: "bwrap", slotUser, limits };
        const message = `slots run as the ${slotUser}'s uid without capabilities: ${failures.join("; ")}`;
        return { isolation: "bwrap", slotUser, limits, message };
      } catch (error) {
        failures.push(`${slotUser}: ${(error as Error).message}`);
      }
    }
    throw new Error(failures.join("; "));
  } catch (error) {
    throw new SandboxError("configuration", `${ISOLATION_UNAVAILABLE}: ${(error as Error).message}`, { cause: error });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function runProbe(plan: SpawnPlan): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    execFile(plan.file, plan.args, { cwd: plan.cwd, env: plan.env, timeout: 10_000 }, (error, _stdout, stderr) =>
      // The exit and bwrap's own words, not the whole command line execFile's message carries.
      error ? reject(new Error(`${plan.file} failed (${error.code ?? error.signal})${stderr ? `: ${stderr.trim()}` : ""}`)) : resolve(),
    );
  });
}

/**
 * What a failed probe's message says about the sandbox's runtime, in the terms a cluster admin sets (the pool's
 * Isolated condition shows it). bwrap needs a user namespace (or root) and a fresh /proc for each slot.
 */
export function isolationDiagnosis(probeMessage: string | undefined): string | undefined {
  if (probeMessage === undefined) return undefined;
  if (/disabled by configuration/.test(probeMessage)) return "slot isolation is disabled by configuration";
  if (/spawn bwrap ENOENT|bwrap: not found|No such file or directory.*bwrap/.test(probeMessage))
    return "bubblewrap is not installed in the sandbox image";
  if (/Can't mount proc/.test(probeMessage))
    return (
      "the container's /proc is masked (every runtime's default), so bwrap cannot mount a fresh one for a slot: run sandboxes " +
      "with a sandboxing runtimeClassName (gVisor, Kata) or procMount: Unmasked (feature gate ProcMountType)"
    );
  if (/(uid map|new namespace|unshare|CLONE_NEWUSER|Operation not permitted|No space left)/.test(probeMessage))
    return (
      "user namespaces are refused: seccomp RuntimeDefault blocks them on most runtimes (kubernetes.seccompProfile: " +
      "Unconfined, or a profile that allows unshare), an AppArmor profile may too, or the node turns them off " +
      "(user.max_user_namespaces=0, kernel.unprivileged_userns_clone=0)"
    );
  return undefined;
}
