import { constants } from "node:fs";
import { lstat, mkdir, readFile, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { buildSlotCommand, cacheDirectory, resolveInsideWorkspace, slotDirectory } from "../isolation.ts";
import { startProcess, type RunningProcess } from "../process.ts";
import type { ExecRequest, ExecResult, IsolationMode } from "../types.ts";
import { classifyLocalError } from "./errors.ts";
import { SandboxError } from "../../base/errors.ts";

const WRITE_NO_FOLLOW = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/**
 * One sandbox's slots on this machine: a directory `<root>/{slots/<n>,cache}` whose slot commands run as local
 * processes. Shared by the local backend (one host per sandbox) and the sandbox server (one host per process).
 */
export class SlotHost {
  readonly root: string;
  readonly slots: number;
  readonly isolation: IsolationMode;
  private readonly baseEnv: Record<string, string>;
  private readonly running = new Map<number, Set<RunningProcess>>();

  constructor(options: { root: string; slots: number; isolation: IsolationMode; env?: Record<string, string> }) {
    this.root = options.root;
    this.slots = options.slots;
    this.isolation = options.isolation;
    this.baseEnv = options.env ?? {};
  }

  /** Creates missing slot and cache directories; existing content stays (a restart keeps workspaces). */
  async prepare(): Promise<void> {
    await mkdir(cacheDirectory(this.root), { recursive: true });
    for (let slot = 0; slot < this.slots; slot++) await mkdir(slotDirectory(this.root, slot), { recursive: true });
  }

  async exec(request: ExecRequest): Promise<ExecResult> {
    this.checkSlot(request.slot);
    const plan = buildSlotCommand({
      sandboxRoot: this.root,
      slot: request.slot,
      command: request.command,
      cwd: request.cwd,
      env: { ...this.baseEnv, ...request.env },
      isolation: this.isolation,
    });
    await this.checkDirectory(slotDirectory(this.root, request.slot));
    const processes = this.running.get(request.slot) ?? new Set<RunningProcess>();
    this.running.set(request.slot, processes);
    const running = startProcess(plan, request);
    processes.add(running);
    try {
      return await running.result;
    } finally {
      processes.delete(running);
    }
  }

  async readFile(slot: number, path: string): Promise<Uint8Array> {
    const file = await this.resolveFile(slot, path);
    try {
      return new Uint8Array(await readFile(file));
    } catch (error) {
      await this.checkDirectory(this.root);
      throw classifyLocalError(error, `read ${path}`, "configuration");
    }
  }

  async writeFile(slot: number, path: string, data: Uint8Array | string): Promise<void> {
    const file = await this.resolveFile(slot, path);
    try {
      await mkdir(dirname(file), { recursive: true });
      // The parent chain may have been a symlink out of the workspace; a link as the last part is refused
      // (an existing one resolves to its checked target, so only a dangling one reaches the open).
      await writeFile(await this.resolveFile(slot, path), data, { flag: WRITE_NO_FOLLOW });
    } catch (error) {
      await this.checkDirectory(this.root);
      throw classifyLocalError(error, `write ${path}`, "configuration");
    }
  }

  /** Kills what runs in the slot, then empties its workspace (the directory stays). */
  async reset(slot: number): Promise<void> {
    this.checkSlot(slot);
    this.killSlot(slot);
    const workspace = slotDirectory(this.root, slot);
    try {
      await mkdir(workspace, { recursive: true });
      const entries = await readdir(workspace);
      await Promise.all(entries.map((entry) => rm(`${workspace}/${entry}`, { recursive: true, force: true })));
      if ((await readdir(workspace)).length > 0) throw new Error("workspace not empty after reset");
    } catch (error) {
      throw classifyLocalError(error, `reset slot ${slot}`);
    }
  }

  killAll(): void {
    for (const slot of this.running.keys()) this.killSlot(slot);
  }

  runningCount(): number {
    let count = 0;
    for (const processes of this.running.values()) count += processes.size;
    return count;
  }

  killSlot(slot: number): void {
    for (const running of this.running.get(slot) ?? []) running.kill();
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
    const file = resolveInsideWorkspace(workspace, path);
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
