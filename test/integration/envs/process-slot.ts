/**
 * Test-only SlotExec over child_process: a sandbox root with slots/<n> and cache, commands run either on the
 * host (paths as they are) or under bubblewrap (workspace at /workspace, cache read-only at /cache; a
 * trusted step sees the cache read-write and an empty /workspace of its own), as the real slot layer (src/backends/isolation.ts)
 * does. Lets the environment tests run without the backends.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ExecRequest, ExecResult } from "../../../src/backends/types.ts";
import type { SlotExec } from "../../../src/envs/types.ts";

export type Isolation = "bwrap" | "none";

export function bwrapWorks(): boolean {
  const probe = spawnSync("bwrap", ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"], { stdio: "ignore" });
  return probe.status === 0;
}

export class ProcessSlot implements SlotExec {
  readonly sandbox: string;
  readonly slot: number;
  readonly workspace: string;
  readonly cache: string;
  readonly isolation: Isolation;
  /** Host directories visible read-only at the same path under bwrap (e.g. file:// git remotes). */
  readonly readOnlyPaths: readonly string[];

  constructor(options: { root: string; sandbox: string; slot: number; isolation: Isolation; readOnlyPaths?: string[] }) {
    this.sandbox = options.sandbox;
    this.slot = options.slot;
    this.workspace = join(options.root, "slots", String(options.slot));
    this.cache = join(options.root, "cache");
    this.isolation = options.isolation;
    this.readOnlyPaths = options.readOnlyPaths ?? [];
  }

  /** The workspace as the slot's commands see it. */
  get workspaceSeen(): string {
    return this.isolation === "bwrap" ? "/workspace" : this.workspace;
  }

  async prepare(): Promise<this> {
    await mkdir(this.workspace, { recursive: true });
    await mkdir(this.cache, { recursive: true });
    return this;
  }

  /** What a slot reset does: wipe the workspace, keep the directory. */
  async reset(): Promise<void> {
    await rm(this.workspace, { recursive: true, force: true });
    await mkdir(this.workspace, { recursive: true });
  }

  private argv(request: Omit<ExecRequest, "slot">, cwd: string, env: Record<string, string>): string[] {
    const { command } = request;
    const inner = typeof command === "string" ? ["bash", "-c", command] : [...command];
    if (this.isolation === "none") return inner;
    const readOnly = (paths: readonly string[]) => paths.flatMap((p) => ["--ro-bind", p, p]);
    const envArgs = Object.entries(env).flatMap(([k, v]) => ["--setenv", k, v]);
    return [
      "bwrap",
      ...readOnly(["/usr", "/etc"]),
      "--symlink",
      "usr/bin",
      "/bin",
      "--symlink",
      "usr/lib",
      "/lib",
      "--symlink",
      "usr/lib64",
      "/lib64",
      "--dev",
      "/dev",
      "--proc",
      "/proc",
      "--tmpfs",
      "/tmp",
      ...readOnly(this.readOnlyPaths),
      ...(request.trusted === true
        ? ["--tmpfs", "/workspace", "--bind", this.cache, "/cache"]
        : ["--bind", this.workspace, "/workspace", "--ro-bind", this.cache, "/cache"]),
      "--chdir",
      cwd,
      "--unshare-pid",
      "--die-with-parent",
      "--clearenv",
      ...envArgs,
      ...inner,
    ];
  }

  exec(request: Omit<ExecRequest, "slot">): Promise<ExecResult> {
    const isolated = this.isolation === "bwrap";
    const workspace = isolated ? "/workspace" : this.workspace;
    const cwd = resolve(workspace, request.cwd ?? ".");
    const env: Record<string, string> = {
      PATH: isolated ? "/usr/bin:/bin" : (process.env.PATH ?? "/usr/bin:/bin"),
      HOME: isolated ? "/tmp" : (process.env.HOME ?? "/tmp"),
      HERMES_WORKSPACE: workspace,
      HERMES_CACHE_DIR: isolated ? "/cache" : this.cache,
      ...request.env,
    };
    const [file, ...args] = this.argv(request, cwd, env);
    const started = performance.now();
    const limit = request.maxOutputBytes ?? 1 << 20;
    return new Promise((done, fail) => {
      const child = spawn(file ?? "bash", args, { cwd: isolated ? undefined : cwd, env, detached: true });
      let stdout = "";
      let stderr = "";
      let truncated = false;
      const keep = (text: string, chunk: Buffer) => {
        const next = text + chunk.toString("utf8");
        if (next.length <= limit) return next;
        truncated = true;
        return next.slice(-limit);
      };
      child.stdout.on("data", (c: Buffer) => (stdout = keep(stdout, c)));
      child.stderr.on("data", (c: Buffer) => (stderr = keep(stderr, c)));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      }, request.timeoutMs);
      child.on("error", fail);
      child.on("close", (code) => {
        clearTimeout(timer);
        done({ exitCode: timedOut ? 124 : (code ?? 1), stdout, stderr, durationMs: performance.now() - started, timedOut, truncated });
      });
      child.stdin.end(request.stdin ?? "");
    });
  }

  readFile(path: string): Promise<Uint8Array> {
    return readFile(join(this.workspace, path));
  }

  writeFile(path: string, data: Uint8Array | string): Promise<void> {
    return writeFile(join(this.workspace, path), data);
  }
}
