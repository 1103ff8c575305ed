import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, rmdir, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { SpawnPlan } from "./process.ts";
import type { SlotResourceLimits } from "./slot-limits.ts";
import { HAND_OVER_ARGS } from "./hand-over.ts";

/**
 * Per-slot cgroups: memory, pids and CPU limits for a slot's commands, and a kill that reaches every process a
 * command started, wherever it moved (a new session, a new process group). Used where this process may make
 * cgroups: a delegated cgroup v2 subtree (pods, Nomad, systemd Delegate=yes) or, as root, the v1 hierarchies.
 * Each slot has one cgroup for the sandbox's life; its commands enter it through a shell that writes its own pid to
 * cgroup.procs and then execs the command (SpawnPlan wrapping), so even their first fork is inside.
 */

export type CgroupVersion = 1 | 2;

const CGROUP_ROOT = "/sys/fs/cgroup";
const V1_CONTROLLERS = ["memory", "pids", "cpu"] as const;
const V2_CONTROLLERS = ["memory", "pids", "cpu"] as const;
const CPU_PERIOD_US = 100_000;
/** A millisecond apart: what a command left dies within a few; a fork bomb capped by pids.max within a few more. */
const KILL_ROUNDS = 5_000;

/** Where this process may make slot cgroups: one directory per hierarchy (v2: one; v1: one per controller). */
export interface CgroupPlace {
  version: CgroupVersion;
  /** v2: the unified hierarchy's parent (key ""); v1: the parent in each of memory, pids and cpu. */
  parents: Record<string, string>;
}

/** Parses /proc/self/cgroup: hierarchy controllers ("" for v2's unified line) to this process's path in it. */
export function parseProcCgroup(text: string): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match === null) continue;
    const [, controllers = "", path = "/"] = match;
    if (controllers === "") paths.set("", path);
    for (const controller of controllers.split(",")) if (controller !== "") paths.set(controller, path);
  }
  return paths;
}

/**
 * Finds where slot cgroups can be made, or says why not. v2 when /sys/fs/cgroup is the unified hierarchy (the
 * common case in pods and on current hosts) and the memory, pids and cpu controllers reach this process's cgroup;
 * else v1 when this process may write its memory, pids and cpu cgroups (root on a v1 host).
 */
export function findCgroupPlace(
  procCgroup = readText("/proc/self/cgroup"),
  exists: (path: string) => boolean = existsSync,
  readControllers: (path: string) => string = readText,
): CgroupPlace | { unavailable: string } {
  const paths = parseProcCgroup(procCgroup);
  if (exists(posix.join(CGROUP_ROOT, "cgroup.controllers"))) {
    const parent = posix.join(CGROUP_ROOT, paths.get("") ?? "/");
    const available = readControllers(posix.join(parent, "cgroup.controllers")).trim().split(/\s+/);
    const missing = V2_CONTROLLERS.filter((controller) => !available.includes(controller));
    if (missing.length > 0) return { unavailable: `cgroup v2 does not delegate ${missing.join(", ")} to this process (${parent})` };
    return { version: 2, parents: { "": parent } };
  }
  const parents: Record<string, string> = {};
  for (const controller of V1_CONTROLLERS) {
    const path = paths.get(controller);
    const mount = posix.join(CGROUP_ROOT, controller);
    if (path !== undefined && exists(mount)) parents[controller] = posix.join(mount, path);
  }
  const missing = V1_CONTROLLERS.filter((controller) => parents[controller] === undefined);
  if (missing.length > 0) return { unavailable: `no cgroup v2, and cgroup v1 lacks ${missing.join(", ")}` };
  return { version: 1, parents };
}

/** The cgroup of a sandbox's slots (under this process's own): one per sandbox directory, the same after a restart. */
export function sandboxCgroupName(sandboxRoot: string): string {
  return `hermes-${createHash("sha256").update(sandboxRoot).digest("hex").slice(0, 16)}`;
}

/** The files to write, per cgroup directory, to set these limits (pure; the unit tests read it). */
export function limitFiles(version: CgroupVersion, controller: string, limits: SlotResourceLimits): [string, string][] {
  const files: [string, string][] = [];
  const memory = limits.memoryBytes === undefined ? undefined : String(Math.floor(limits.memoryBytes));
  const cpu = limits.cpuMillis === undefined ? undefined : Math.max(1000, Math.floor((limits.cpuMillis * CPU_PERIOD_US) / 1000));
  if (version === 2) {
    if (memory !== undefined) files.push(["memory.max", memory], ["memory.swap.max", "0"]);
    if (limits.pids !== undefined) files.push(["pids.max", String(limits.pids)]);
    if (cpu !== undefined) files.push(["cpu.max", `${cpu} ${CPU_PERIOD_US}`]);
    return files;
  }
  if (controller === "memory" && memory !== undefined)
    files.push(["memory.limit_in_bytes", memory], ["memory.memsw.limit_in_bytes", memory], ["memory.swappiness", "0"]);
  if (controller === "pids" && limits.pids !== undefined) files.push(["pids.max", String(limits.pids)]);
  if (controller === "cpu" && cpu !== undefined)
    files.push(["cpu.cfs_period_us", String(CPU_PERIOD_US)], ["cpu.cfs_quota_us", String(cpu)]);
  return files;
}

/**
 * Wraps a plan so that its process joins the given cgroups before it runs the command: a shell writes its own pid
 * to each cgroup.procs, then execs the plan (exit 125 if it could not join: the command does not run unconfined).
 */
export function joinCgroupsFirst(plan: SpawnPlan, procsFiles: readonly string[]): SpawnPlan {
  const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
  return { ...plan, file: "/bin/sh", args: ["-c", script, "sh", ...procsFiles, "--", plan.file, ...plan.args] };
}

/** One sandbox's slot cgroups: `<parent>/<name>/slot-<n>` in each hierarchy. */
export class SlotCgroups {
  readonly version: CgroupVersion;
  private readonly place: CgroupPlace;
  private readonly name: string;

  private constructor(place: CgroupPlace, name: string) {
    this.place = place;
    this.version = place.version;
    this.name = name;
  }

  /** Makes the sandbox's cgroup and one per slot with its limits (idempotent: a restarted server reuses them). */
  static async create(place: CgroupPlace, name: string, slots: number, limits: SlotResourceLimits): Promise<SlotCgroups> {
    const cgroups = new SlotCgroups(place, name);
    if (place.version === 2) await enableV2Controllers(place.parents[""] ?? CGROUP_ROOT, name);
    for (const parent of Object.values(place.parents)) await mkdir(posix.join(parent, name), { recursive: true });
    for (let slot = 0; slot < slots; slot++) {
      for (const [controller, directory] of cgroups.directories(slot)) {
        await mkdir(directory, { recursive: true });
        for (const [file, value] of limitFiles(place.version, controller, limits)) {
          // memsw and swap files exist only where swap accounting is on; without swap there is nothing to cap.
          await writeFile(posix.join(directory, file), value).catch((error: NodeJS.ErrnoException) => {
            if (!(error.code === "ENOENT" && /swap|memsw/.test(file))) throw error;
          });
        }
      }
    }
    return cgroups;
  }

  /**
   * The plan, made to run its command in the slot's cgroups: bwrap joins them while it builds the sandbox (a
   * hand-over), a plain process through a shell first.
   */
  wrap(plan: SpawnPlan, slot: number): SpawnPlan {
    const cgroupProcs = this.directories(slot).map(([, directory]) => posix.join(directory, "cgroup.procs"));
    if (plan.file !== "bwrap") return joinCgroupsFirst(plan, cgroupProcs);
    if (plan.handOver !== undefined) return { ...plan, handOver: { ...plan.handOver, cgroupProcs } };
    return { ...plan, args: [...HAND_OVER_ARGS, ...plan.args], handOver: { cgroupProcs } };
  }

  /**
   * SIGKILLs every process in the slot's cgroup and waits until it is empty: v2's cgroup.kill, else rounds of SIGKILL
   * to what cgroup.procs lists (a process forked between two rounds is in the next; pids.max bounds how many).
   */
  async kill(slot: number): Promise<void> {
    const directory = this.primary(slot);
    if (pidsIn(directory).length === 0) return;
    const killFile = posix.join(directory, "cgroup.kill");
    const oneShot = this.version === 2 && existsSync(killFile);
    if (oneShot) writeFileSync(killFile, "1");
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const pids = pidsIn(directory);
      if (pids.length === 0) return;
      if (!oneShot) for (const pid of pids) signal(pid);
      await sleep(1);
    }
    throw new Error(`slot ${slot}'s cgroup still has processes after ${KILL_ROUNDS} kill rounds`);
  }

  /**
   * Removes what a sandbox server that was killed (no close) left of its slot cgroups: called when the sandbox goes.
   * Nothing to do where no cgroup can be made or none was.
   */
  static async removeLeftovers(sandboxRoot: string): Promise<void> {
    const place = findCgroupPlace();
    if ("unavailable" in place) return;
    const cgroups = new SlotCgroups(place, sandboxCgroupName(sandboxRoot));
    const parent = posix.dirname(cgroups.primary(0));
    const slots = (await readdir(parent).catch(() => [])).filter((entry) => /^slot-\d+$/.test(entry)).length;
    if (slots > 0) await cgroups.remove(slots);
  }

  /** Kills what runs in every slot and removes the cgroups. */
  async remove(slots: number): Promise<void> {
    for (let slot = 0; slot < slots; slot++) {
      await this.kill(slot);
      for (const [, directory] of this.directories(slot)) await rmdir(directory).catch(ignoreMissing);
    }
    for (const parent of Object.values(this.place.parents)) await rmdir(posix.join(parent, this.name)).catch(ignoreMissing);
  }

  private directory(controller: string, slot: number): string {
    return posix.join(this.place.parents[controller] ?? CGROUP_ROOT, this.name, `slot-${slot}`);
  }

  private directories(slot: number): [string, string][] {
    return Object.keys(this.place.parents).map((controller) => [controller, this.directory(controller, slot)]);
  }

  /** The hierarchy whose cgroup.procs lists the slot's processes: v2's one, v1's pids. */
  private primary(slot: number): string {
    return this.directory(this.version === 2 ? "" : "pids", slot);
  }
}

/**
 * cgroup v2 lets a cgroup hand controllers to its children only while it holds no process itself ("no internal
 * processes"): when this process's own cgroup has processes (a container's, a Nomad task's), they move to a leaf
 * child first, as container inits do. Then memory, pids and cpu are enabled down to the sandbox's cgroup.
 */
async function enableV2Controllers(parent: string, name: string): Promise<void> {
  const enable = V2_CONTROLLERS.map((controller) => `+${controller}`).join(" ");
  const subtree = posix.join(parent, "cgroup.subtree_control");
  const enabled = (await readFile(subtree, "utf8")).trim().split(/\s+/);
  if (!V2_CONTROLLERS.every((controller) => enabled.includes(controller))) {
    const residents = pidsIn(parent);
    if (residents.length > 0) {
      const leaf = posix.join(parent, "hermes-supervisor");
      await mkdir(leaf, { recursive: true });
      for (const pid of residents) await writeFile(posix.join(leaf, "cgroup.procs"), String(pid)).catch(() => undefined);
    }
    await writeFile(subtree, enable);
  }
  await mkdir(posix.join(parent, name), { recursive: true });
  await writeFile(posix.join(parent, name, "cgroup.subtree_control"), enable);
}

function pidsIn(directory: string): number[] {
  return readText(posix.join(directory, "cgroup.procs"))
    .split("\n")
    .filter((line) => line !== "")
    .map(Number);
}

function signal(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== "ENOENT") throw error;
}

/** What the slot limits are here, for health and the pool's Isolated condition. */
export function describeSlotLimits(limits: SlotResourceLimits, cgroups: SlotCgroups | { unavailable: string }): string {
  const asked = [
    limits.memoryBytes === undefined ? undefined : `memory ${formatBytes(limits.memoryBytes)}`,
    limits.pids === undefined ? undefined : `${limits.pids} processes`,
    limits.cpuMillis === undefined ? undefined : `${limits.cpuMillis / 1000} CPU`,
  ].filter((part) => part !== undefined);
  if (asked.length === 0) return "no per-slot memory, process or CPU limit asked for";
  if (cgroups instanceof SlotCgroups) return `per-slot cgroup v${cgroups.version}: ${asked.join(", ")}`;
  return `no per-slot cgroup (${cgroups.unavailable}): ${asked.join(", ")} not enforced`;
}

export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} B`;
}
