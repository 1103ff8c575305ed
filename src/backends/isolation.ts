import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { SANDBOX_CACHE, SLOT_WORKSPACE, type IsolationMode, type NetworkPolicy } from "./types.ts";
import { imageRootArgs, slotHelper, type ImageView } from "./image-view.ts";
import { SandboxError } from "../base/errors.ts";
import { HAND_OVER_ARGS } from "./hand-over.ts";
import { startProcess, type SpawnPlan } from "./process.ts";

/**
 * How one slot command is spawned. Pure: the same function serves the local backend, the sandbox server and
 * (through Modal's exec) Modal sandboxes, which only differ in the sandbox root and where the process starts.
 *
 * With "bwrap" the command sees only its slot workspace (read-write, at /workspace, also the cwd), the sandbox
 * cache at /cache (read-only), read-only system dirs, a private size-capped /tmp, fresh /proc and /dev, its own
 * pid/ipc/uts namespaces and, under the network policy "none", its own network namespace (only a loopback of its
 * own: neither the host's 127.0.0.1 services nor the sandbox server are reachable). It dies with its parent, and
 * everything it started dies with it (the pid namespace's init ends when the command does); it holds no capability
 * and never runs as root (see SlotUser): each slot has a uid of its own, under which its processes are capped. A
 * trusted step (ExecRequest.trusted) is confined the same way but sees the cache read-write and no workspace (an
 * empty /workspace of its own, a tmpfs where it can build what slots will see at the same paths) and keeps the
 * sandbox's network: nothing a slot left behind can steer what it writes into the cache. With "none" it runs as a
 * plain process in the slot directory, and nothing is enforced.
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
  /** Under bwrap, the image slot commands see as their root (image-view.ts); unset: the host's system dirs. */
  image?: ImageView | undefined;
  /** Under bwrap, where the workspace is mounted (HERMES_WORKSPACE, the cwd); default SLOT_WORKSPACE. */
  workdir?: string | undefined;
}

/** The size cap of a bwrap slot's private /tmp (a tmpfs, so it counts against the sandbox's memory). */
export const SLOT_TMP_BYTES = 1024 ** 3;

/** The uid (and gid) trusted steps run as under bwrap: the owner of the cache. Slot n runs as slotUid(n). */
export const TRUSTED_UID = 1000;

/**
 * Each slot runs as a uid of its own, neither another slot's nor the trusted steps': the kernel counts RLIMIT_NPROC
 * per real uid, so one slot's fork burst exhausts only its own count (under "setpriv"; in a user namespace the
 * count is the namespace's, one per command, and the uid is what `id` shows).
 */
export function slotUid(slot: number): number {
  return TRUSTED_UID + 1 + slot;
}

/**
 * Git's system config for slot commands that run as another uid than the cache's owner (setpriv): the cache's
 * repositories, written by trusted steps, are not the slot's, and git refuses a repository someone else owns
 * ("dubious ownership") unless system or global config marks it safe (-c or GIT_CONFIG_COUNT do not reach the
 * upload-pack of a local clone). The global config is the slot's own (~/.gitconfig in its workspace), so
 * GIT_CONFIG_SYSTEM points here: the system config, plus `safe.directory = *` (a slot sees no repository but its own
 * and the cache's). SlotHost.prepare writes it; git ignores a GIT_CONFIG_SYSTEM that does not exist.
 */
export const SLOT_GIT_CONFIG = { file: ".slot-gitconfig", text: "[include]\n\tpath = /etc/gitconfig\n[safe]\n\tdirectory = *\n" };

/**
 * RLIMIT_NPROC of a slot command (processes and threads of its uid, or of its user namespace): a fork bomb stops
 * there instead of at the machine's pid_max. Above what test runs use (pytest-xdist, make -j, a JVM's threads).
 */
export const SLOT_MAX_PROCESSES = 512;

/**
 * How a bwrap slot stops being root; every capability is dropped in all three.
 * - "user-namespace": bwrap, started by a non-root spawner, makes a user namespace where the slot is slotUid(n).
 * - "setpriv": bwrap is started by root and keeps only what setpriv needs to switch to slotUid(n) on the host
 *   (then nothing, with an empty bounding set). A user namespace does not help a root spawner: its uids map to
 *   host uid 0, which owns /etc/shadow; and bwrap started as a slot uid cannot reach a sandbox root under a
 *   directory private to root (mkdtemp, /root).
 * - "spawner": the spawner's uid (a setuid bwrap without user namespaces, or a caller that did not probe); no
 *   process limit then, as every slot shares that uid (and root's count is never enforced).
 */
export type SlotUser = "user-namespace" | "setpriv" | "spawner";

/**
 * The host owner of a slot's workspace files (or of the cache's, which trusted steps write), when slots run as
 * other uids than the trusted side.
 */
export function slotFileOwner(
  isolation: IsolationMode,
  slotUser: SlotUser | undefined,
  of: number | "cache",
): { uid: number; gid: number } | undefined {
  if (isolation !== "bwrap" || slotUser !== "setpriv") return undefined;
  const uid = of === "cache" ? TRUSTED_UID : slotUid(of);
  return { uid, gid: uid };
}

function slotUserArgs(slotUser: SlotUser, uid: number): string[] {
  switch (slotUser) {
    case "user-namespace":
      return ["--unshare-user", "--uid", String(uid), "--gid", String(uid), "--cap-drop", "ALL"];
    case "setpriv":
      return ["--cap-drop", "ALL", ...["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"].flatMap((cap) => ["--cap-add", cap])];
    case "spawner":
      return ["--cap-drop", "ALL"];
  }
}

/**
 * Inside bwrap, before the command: its limits (set in the user namespace, so they count there), then its uid. In an
 * image root the helpers may be the host's (slotHelper).
 */
function commandPrefix(slotUser: SlotUser, uid: number, trusted: boolean, image: ImageView | undefined): string[] {
  const limits = slotUser === "spawner" || trusted ? [] : [...slotHelper(image, "prlimit"), `--nproc=${SLOT_MAX_PROCESSES}`, "--"];
  const toUid = [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"];
  return [...limits, ...(slotUser === "setpriv" ? [...slotHelper(image, "setpriv"), ...toUid] : [])];
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
export function resolveInsideWorkspace(workspace: string, relative: string | undefined, slotView = SLOT_WORKSPACE): string {
  if (relative === undefined || relative === "" || relative === ".") return workspace;
  const candidate =
    posix.isAbsolute(relative) && relative.startsWith(`${slotView}/`)
      ? posix.join(workspace, relative.slice(slotView.length))
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
  if (spec.image !== undefined && !isolated) throw new SandboxError("configuration", "an image root needs isolation bwrap");
  // Trusted steps keep the host's view (its git), at the same workspace path the slots see.
  const image = spec.trusted === true ? undefined : spec.image;
  const workspace = isolated ? (spec.workdir ?? SLOT_WORKSPACE) : hostWorkspace;
  const cacheDir = isolated ? SANDBOX_CACHE : hostCache;
  if (spec.trusted === true && spec.cwd !== undefined) throw new SandboxError("configuration", "a trusted step takes no cwd");
  const cwd = resolveInsideWorkspace(workspace, spec.cwd);
  const env: Record<string, string> = {
    PATH: BASE_PATH,
    HOME: workspace,
    LANG: "C.UTF-8",
    TERM: "dumb",
    ...(isolated && spec.slotUser === "setpriv" && spec.trusted !== true
      ? { GIT_CONFIG_SYSTEM: posix.join(SANDBOX_CACHE, SLOT_GIT_CONFIG.file) }
      : {}),
    ...image?.env,
    ...spec.env,
    HERMES_WORKSPACE: workspace,
    HERMES_CACHE_DIR: cacheDir,
  };
  const argv = typeof spec.command === "string" ? ["bash", "-c", spec.command] : [...spec.command];
  const [first, ...rest] = argv;
  if (first === undefined) throw new SandboxError("configuration", "empty command");
  if (!isolated) return { file: first, args: rest, cwd, env };
  // bwrap is found on the host's PATH; the command gets the image's.
  const pathInside = image !== undefined && env.PATH !== BASE_PATH ? ["--setenv", "PATH", env.PATH ?? BASE_PATH] : [];
  const slotUser = spec.slotUser ?? "spawner";
  const uid = spec.trusted === true ? TRUSTED_UID : slotUid(spec.slot);
  // Trusted steps fetch from the task's remote; environment steps before the agent (install) reach package indexes.
  const network = spec.trusted === true ? "host" : (spec.network ?? "none");
  const egress = network === "egress" ? { userNamespace: slotUser === "user-namespace" } : undefined;
  const args = [
    ...slotUserArgs(slotUser, uid),
    "--die-with-parent",
    "--new-session",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    ...(network === "host" ? [] : ["--unshare-net"]),
    ...(egress === undefined ? [] : HAND_OVER_ARGS),
    "--hostname",
    `slot-${spec.slot}`,
    ...(image === undefined ? READ_ONLY_SYSTEM_DIRS.flatMap((dir) => ["--ro-bind-try", dir, dir]) : imageRootArgs(image, spec.sandboxRoot)),
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
      ? ["--perms", "1777", "--tmpfs", workspace, "--bind", hostCache, SANDBOX_CACHE]
      : ["--bind", hostWorkspace, workspace, "--ro-bind", hostCache, SANDBOX_CACHE]),
    ...pathInside,
    "--chdir",
    cwd,
    "--",
    ...commandPrefix(slotUser, uid, spec.trusted === true, image),
    ...argv,
  ];
  const spawnEnv = pathInside.length > 0 ? { ...env, PATH: BASE_PATH } : env;
  return { file: "bwrap", args, cwd: hostWorkspace, env: spawnEnv, ...(egress === undefined ? {} : { handOver: { egress } }) };
}

export interface IsolationProbe {
  isolation: IsolationMode;
  /** Under bwrap, who slots run as: "user-namespace" when one is in use. */
  slotUser?: SlotUser;
  message?: string;
  /** Under bwrap, what is limited per slot here and what not (slotLimits); health and the pool's status show it. */
  limits?: string;
}

/**
 * What a bwrap slot is limited in by bwrap itself: processes through RLIMIT_NPROC (SLOT_MAX_PROCESSES) where slots
 * have uids of their own, and the size of /tmp. The slot's cgroup and workspace volume (SlotHost) add the rest.
 */
export function slotLimits(slotUser: SlotUser): string {
  const counted = slotUser === "setpriv" ? "slot (a uid of its own)" : "slot command (a user namespace of its own)";
  const processes =
    slotUser === "spawner"
      ? "no per-slot RLIMIT_NPROC (slots share the spawner's uid)"
      : `at most ${SLOT_MAX_PROCESSES} processes per ${counted}`;
  return `${processes}; /tmp capped at ${SLOT_TMP_BYTES / 1024 ** 3} GiB`;
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
        const limits = slotLimits(slotUser);
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

/** Runs the plan as slot commands run (an egress plan with its network); fails with the exit and bwrap's own words. */
async function runProbe(plan: SpawnPlan): Promise<void> {
  const { exitCode, stderr } = await startProcess(plan, { timeoutMs: 10_000 }).result;
  if (exitCode !== 0) throw new Error(`${plan.file} failed (${exitCode})${stderr ? `: ${stderr.trim()}` : ""}`);
}

/**
 * What a failed probe's message says about the sandbox's runtime, in the terms a cluster admin sets (the pool's
 * Isolated condition shows it). bwrap needs a user namespace (or root) and a fresh /proc for each slot.
 */
export function isolationDiagnosis(probeMessage: string | undefined): string | undefined {
  if (probeMessage === undefined) return undefined;
  if (/disabled by configuration/.test(probeMessage)) return "slot isolation is disabled by configuration";
  if (/execvp (prlimit|setpriv)/.test(probeMessage)) return "util-linux (prlimit, setpriv) is not installed in the sandbox image";
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
