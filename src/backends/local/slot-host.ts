import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { chmod, lchown, lstat, mkdir, open, readdir, realpath, rm, writeFile, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  buildSlotCommand,
  cacheDirectory,
  resolveInsideWorkspace,
  SLOT_GIT_CONFIG,
  slotDirectory,
  slotFileOwner,
  type SlotUser,
} from "../isolation.ts";
import { imageMountPoints, type ImageView } from "../image-view.ts";
import { startProcess, type RunningProcess } from "../process.ts";
import { describeSlotLimits, findCgroupPlace, formatBytes, sandboxCgroupName, SlotCgroups } from "../cgroups.ts";
import type { SlotLimits } from "../slot-limits.ts";
import { mountWorkspaceVolume, unmountUnder, workspaceImage, workspaceVolumesUnavailable } from "./workspace-volume.ts";
import { SLOT_WORKSPACE, type ExecRequest, type ExecResult, type IsolationMode, type NetworkPolicy } from "../types.ts";
import { classifyLocalError } from "./errors.ts";
import { errorMessage, SandboxError } from "../../base/errors.ts";

// Non-blocking: opening a FIFO the slot left in its workspace must not hang the request (and the slot's lock).
const READ_NO_BLOCK = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE_NO_BLOCK = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WORKSPACE_MODE = 0o755;

/**
 * One sandbox's slots on this machine: a directory `<root>/{slots/<n>,cache}` whose slot commands run as local
 * processes. The sandbox server serves one; local sandboxes, Nomad allocations and pods all run that server.
 */
export class SlotHost {
  readonly root: string;
  readonly slots: number;
  readonly isolation: IsolationMode;
  readonly slotUser: SlotUser | undefined;
  readonly network: NetworkPolicy;
  /** The image slot commands see as their root (bwrap only); unset: the host's system dirs. */
  readonly image: ImageView | undefined;
  /** Under bwrap, where each slot's workspace is mounted; /workspace when unset. */
  readonly workdir: string | undefined;
  readonly limits: SlotLimits;
  private readonly baseEnv: Record<string, string>;
  private readonly running = new Map<number, Set<RunningProcess>>();
  private cgroups: SlotCgroups | { unavailable: string } = { unavailable: "not prepared" };
  private workspaceVolumes: boolean | string = "not prepared";

  constructor(options: {
    root: string;
    slots: number;
    isolation: IsolationMode;
    slotUser?: SlotUser | undefined;
    network?: NetworkPolicy;
    env?: Record<string, string>;
    image?: ImageView | undefined;
    workdir?: string | undefined;
    limits?: SlotLimits;
  }) {
    this.root = options.root;
    this.slots = options.slots;
    this.isolation = options.isolation;
    this.slotUser = options.slotUser;
    this.network = options.network ?? "none";
    this.baseEnv = options.env ?? {};
    this.image = options.image;
    this.workdir = options.workdir;
    this.limits = options.limits ?? {};
  }

  /**
   * Creates missing slot and cache directories; existing content stays (a restart keeps workspaces). Where it can,
   * gives each slot a cgroup with its limits and a size-capped workspace (`limitsDescription` says what held).
   */
  async prepare(): Promise<void> {
    // Mount points in the image's rootfs, made once here: bwrap cannot make them in a root it binds read-only.
    const image = this.image;
    if (image !== undefined) {
      const mountPoints = imageMountPoints(image, this.workdir ?? SLOT_WORKSPACE);
      await Promise.all(mountPoints.map((path) => mkdir(join(image.root, path), { recursive: true })));
    }
    await mkdir(cacheDirectory(this.root), { recursive: true });
    await this.giveTo("cache", cacheDirectory(this.root));
    if (this.ownerOf("cache") !== undefined) await writeFile(join(cacheDirectory(this.root), SLOT_GIT_CONFIG.file), SLOT_GIT_CONFIG.text);
    for (let slot = 0; slot < this.slots; slot++) await mkdir(slotDirectory(this.root, slot), { recursive: true });
    // Limits hold where this host allows them; where it does not, limitsDescription says why and slots still run.
    this.workspaceVolumes = await this.mountWorkspaces().catch(async (error: unknown) => {
      await unmountUnder(join(this.root, "slots"));
      return `cannot mount workspace images: ${errorMessage(error)}`;
    });
    for (let slot = 0; slot < this.slots; slot++) await this.giveTo(slot, slotDirectory(this.root, slot));
    const place = findCgroupPlace();
    this.cgroups =
      "unavailable" in place
        ? place
        : await SlotCgroups.create(place, sandboxCgroupName(this.root), this.slots, this.limits).catch((error: unknown) => ({
            unavailable: `cannot make cgroups: ${errorMessage(error)}`,
          }));
  }

  /** true once every slot's workspace is its size-capped image; else why not. */
  private async mountWorkspaces(): Promise<boolean | string> {
    const bytes = this.limits.workspaceBytes;
    if (bytes === undefined) return false;
    const unavailable = workspaceVolumesUnavailable();
    if (unavailable !== undefined) return unavailable;
    const slots = Array.from({ length: this.slots }, (_, slot) => slot);
    await Promise.all(
      slots.map((slot) => mountWorkspaceVolume(workspaceImage(this.root, slot), slotDirectory(this.root, slot), bytes, this.ownerOf(slot))),
    );
    return true;
  }

  /** What is limited per slot here (health shows it next to the isolation). */
  limitsDescription(): string {
    const bytes = this.limits.workspaceBytes;
    const workspace =
      bytes === undefined
        ? "no workspace size cap asked for"
        : this.workspaceVolumes === true
          ? `workspace capped at ${formatBytes(bytes)}`
          : `workspace not capped (${String(this.workspaceVolumes)})`;
    return `${describeSlotLimits(this.limits, this.cgroups)}; ${workspace}`;
  }

  /** Kills every slot's processes, removes the slots' cgroups and unmounts their workspaces (images stay). */
  async close(): Promise<void> {
    this.killAll();
    if (this.cgroups instanceof SlotCgroups) await this.cgroups.remove(this.slots);
    await unmountUnder(join(this.root, "slots"));
  }

  async exec(request: ExecRequest): Promise<ExecResult> {
    this.checkSlot(request.slot);
    const built = buildSlotCommand({
      sandboxRoot: this.root,
      slot: request.slot,
      command: request.command,
      cwd: request.cwd,
      env: { ...this.baseEnv, ...request.env },
      isolation: this.isolation,
      slotUser: this.slotUser,
      trusted: request.trusted,
      network: this.network,
      image: this.image,
      workdir: this.workdir,
    });
    // Trusted steps (the environment's fetch and install) are not the model's: they are not held to its limits.
    const cgroups = request.trusted === true ? undefined : this.slotCgroups();
    const plan = cgroups === undefined ? built : cgroups.wrap(built, request.slot);
    await this.checkDirectory(slotDirectory(this.root, request.slot));
    const processes = this.running.get(request.slot) ?? new Set<RunningProcess>();
    this.running.set(request.slot, processes);
    const running = startProcess(plan, { ...request, killSession: this.isolation === "none" });
    processes.add(running);
    try {
      return await running.result;
    } finally {
      processes.delete(running);
      // A command's end is its end: what it left in the slot's cgroup (one command runs per slot at a time) dies.
      await cgroups?.kill(request.slot);
    }
  }

  async readFile(slot: number, path: string): Promise<Uint8Array> {
    const file = await this.resolveFile(slot, path);
    let handle: FileHandle | undefined;
    try {
      handle = await openRegular(file, READ_NO_BLOCK, `read ${path}`);
      return new Uint8Array(await handle.readFile());
    } catch (error) {
      await this.checkDirectory(this.root);
      throw classifyLocalError(error, `read ${path}`, "configuration");
    } finally {
      await handle?.close();
    }
  }

  async writeFile(slot: number, path: string, data: Uint8Array | string): Promise<void> {
    const file = await this.resolveFile(slot, path);
    let handle: FileHandle | undefined;
    try {
      await this.makeDirectories(slot, dirname(file));
      // The parent chain may have been a symlink out of the workspace; a link as the last part is refused
      // (an existing one resolves to its checked target, so only a dangling one reaches the open).
      handle = await openRegular(await this.resolveFile(slot, path), WRITE_NO_BLOCK, `write ${path}`);
      await handle.writeFile(data);
      const owner = this.ownerOf(slot);
      if (owner !== undefined) await handle.chown(owner.uid, owner.gid);
    } catch (error) {
      await this.checkDirectory(this.root);
      throw classifyLocalError(error, `write ${path}`, "configuration");
    } finally {
      await handle?.close();
    }
  }

  /** Kills what runs in the slot, then empties its workspace (the directory stays). */
  async reset(slot: number): Promise<void> {
    this.checkSlot(slot);
    this.killSlot(slot);
    await this.slotCgroups()?.kill(slot);
    const workspace = slotDirectory(this.root, slot);
    try {
      await mkdir(workspace, { recursive: true });
      await this.giveTo(slot, workspace);
      await chmod(workspace, WORKSPACE_MODE); // the slot may have locked its own workspace (chmod 000) against the next lessee
      await emptyDirectory(workspace).catch(async () => {
        // An immutable or append-only file (chattr +i/+a, where a slot could set it) refuses removal even to root
        // (EPERM, or ENOTDIR from rm's fallback): clear the flags, then the second try's error is the answer.
        await clearFileFlags(workspace);
        await emptyDirectory(workspace);
      });
    } catch (error) {
      throw classifyLocalError(error, `reset slot ${slot}`);
    }
  }

  killAll(): void {
    for (const slot of this.running.keys()) this.killSlot(slot);
  }

  killSlot(slot: number): void {
    for (const running of this.running.get(slot) ?? []) running.kill();
  }

  private slotCgroups(): SlotCgroups | undefined {
    return this.cgroups instanceof SlotCgroups ? this.cgroups : undefined;
  }

  /** mkdir -p whose new directories belong to the slot's user, so its commands can write in them. */
  private async makeDirectories(slot: number, directory: string): Promise<void> {
    const first = await mkdir(directory, { recursive: true });
    if (first === undefined) return;
    for (let created = directory; created.length >= first.length; created = dirname(created)) await this.giveTo(slot, created);
  }

  /** Set when slots run as other host uids (each slot its own; trusted steps, which write the cache, another). */
  private ownerOf(of: number | "cache"): { uid: number; gid: number } | undefined {
    return slotFileOwner(this.isolation, this.slotUser, of);
  }

  private async giveTo(of: number | "cache", path: string): Promise<void> {
    const owner = this.ownerOf(of);
    if (owner !== undefined) await lchown(path, owner.uid, owner.gid);
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new SandboxError("configuration", `unknown slot ${slot} (sandbox has ${this.slots})`);
    }
  }

  private async checkDirectory(path: string): Promise<void> {
    try {
      await lstat(path);
    } catch (error) {
      throw classifyLocalError(error, `slot directory ${path}`);
    }
  }

  /** A path in the slot workspace: the real path of an existing file; symlinks may not lead out of it. */
  private async resolveFile(slot: number, path: string): Promise<string> {
    this.checkSlot(slot);
    const workspace = slotDirectory(this.root, slot);
    const file = resolveInsideWorkspace(workspace, path, this.workdir);
    let existing = file;
    for (;;) {
      try {
        const real = await realpath(existing);
        const realWorkspace = await realpath(workspace);
        if (real !== realWorkspace && !real.startsWith(`${realWorkspace}/`)) {
          resolveInsideWorkspace(realWorkspace, real); // throws the same "outside the workspace" error
        }
        return existing === file ? real : file;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT" || existing === workspace) {
          throw classifyLocalError(error, `resolve ${path}`);
        }
        existing = dirname(existing);
      }
    }
  }
}

async function emptyDirectory(directory: string): Promise<void> {
  const entries = await readdir(directory);
  await Promise.all(entries.map((entry) => rm(`${directory}/${entry}`, { recursive: true, force: true })));
  if ((await readdir(directory)).length > 0) throw new Error("workspace not empty after reset");
}

/**
 * `chattr -R -i -a` from outside the slot (it needs CAP_LINUX_IMMUTABLE, which only this side may hold). chattr
 * follows no symlink and opens no FIFO, socket or device while recursing. Its exit status is not trusted: the
 * removal that follows is the check.
 */
function clearFileFlags(directory: string): Promise<void> {
  return new Promise((resolve) => execFile("chattr", ["-R", "-f", "-i", "-a", "--", directory], { timeout: 60_000 }, () => resolve()));
}

/** Opens without blocking and refuses anything but a regular file (a FIFO, socket or device the slot left there). */
async function openRegular(file: string, flags: number, what: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(file, flags, 0o644);
  } catch (error) {
    // ENXIO: a socket, or a FIFO opened for writing with nobody reading it.
    if ((error as NodeJS.ErrnoException).code === "ENXIO") throw new SandboxError("configuration", `${what}: not a regular file`);
    throw error;
  }
  const stats = await handle.stat();
  if (stats.isFile()) return handle;
  await handle.close();
  const type = stats.isFIFO() ? "a FIFO" : stats.isDirectory() ? "a directory" : stats.isSocket() ? "a socket" : "a device";
  throw new SandboxError("configuration", `${what}: not a regular file (${type})`);
}
