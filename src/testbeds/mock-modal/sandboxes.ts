import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { posix } from "node:path";
import { MockProcess } from "./process.ts";

/** GenericResult.status values the SDK maps (3 → exit 137, 4 → exit 124, else `exitcode`). */
export const GENERIC_STATUS = { success: 1, failure: 2, terminated: 3, timeout: 4, idleTimeout: 7 } as const;

export interface SandboxResult {
  status: number;
  exitcode: number;
  exception: string;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Modal-style id: prefix, dash, base62. The SDK treats `sb-` + exactly 22 chars as a V1 sandbox, so V2 ids use 26. */
export function mintId(prefix: string, length = 22): string {
  const bytes = randomBytes(length);
  let suffix = "";
  for (const byte of bytes) suffix += BASE62[byte % 62];
  return `${prefix}-${suffix}`;
}

export interface SandboxSpec {
  appId: string;
  name: string;
  tags: Map<string, string>;
  timeoutSecs: number;
  idleTimeoutSecs: number;
  /** The sandbox's working directory as its clients name it; the mock maps it onto the sandbox root. */
  workdir: string;
  env: Record<string, string>;
  entrypointArgs: readonly string[];
  /** Where the client asked Modal to place the sandbox (recorded, not acted on). */
  regions: readonly string[];
  v1: boolean;
}

/**
 * A mock sandbox: a root directory on this host and real processes started in it. Its lifetime is enforced
 * (status 4 → the SDK reports 124), terminate kills everything (status 3 → 137), and `kill` simulates a sandbox
 * that dies under a running exec (status 2).
 */
export class MockSandbox {
  readonly id: string;
  readonly taskId = mintId("ta");
  readonly createdAt = Date.now() / 1000;
  readonly root: string;
  readonly spec: SandboxSpec;
  readonly execs = new Map<string, MockProcess>();
  readonly entrypoint: MockProcess | undefined;
  tags: Map<string, string>;
  result: SandboxResult | undefined;
  /** Highest V1 `SandboxStdinWrite` index applied (V1 stdin is indexed per write). */
  lastV1StdinIndex = 0;
  private readonly finishedWaiters: Array<() => void> = [];
  private readonly lifetimeTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(spec: SandboxSpec, dataDir: string) {
    this.spec = spec;
    this.id = spec.v1 ? mintId("sb") : mintId("sb", 26);
    this.tags = new Map(spec.tags);
    this.root = posix.join(dataDir, this.id);
    mkdirSync(this.root, { recursive: true });
    this.lifetimeTimer = setTimeout(
      () => this.finish({ status: GENERIC_STATUS.timeout, exitcode: 124, exception: "sandbox lifetime reached" }),
      spec.timeoutSecs * 1000,
    );
    this.lifetimeTimer.unref();
    if (spec.entrypointArgs.length > 0) {
      this.entrypoint = this.spawn(spec.entrypointArgs, {}, undefined, undefined, true, true);
      void this.entrypoint.wait().then((exit) => {
        const code = "code" in exit ? exit.code : 128 + exit.signal;
        this.finish({ status: code === 0 ? GENERIC_STATUS.success : GENERIC_STATUS.failure, exitcode: code, exception: "" });
      });
    }
    this.touch();
  }

  get running(): boolean {
    return this.result === undefined;
  }

  /** Maps a client path: the sandbox workdir (and below) lives in the root; relative paths start there. */
  hostPath(path: string | undefined): string {
    if (path === undefined || path === "") return this.root;
    const workdir = this.spec.workdir;
    if (workdir !== "" && (path === workdir || path.startsWith(`${workdir}/`))) return posix.join(this.root, path.slice(workdir.length));
    return posix.isAbsolute(path) ? path : posix.join(this.root, path);
  }

  exec(
    execId: string,
    argv: readonly string[],
    options: { env: Record<string, string>; workdir?: string; timeoutSecs?: number; pipeStdout: boolean; pipeStderr: boolean },
  ): MockProcess {
    const existing = this.execs.get(execId);
    if (existing !== undefined) return existing; // the SDK retries TaskExecStart with the same exec id
    const process = this.spawn(argv, options.env, options.workdir, options.timeoutSecs, options.pipeStdout, options.pipeStderr);
    this.execs.set(execId, process);
    void process.wait().then(() => this.touch());
    return process;
  }

  private spawn(
    argv: readonly string[],
    env: Record<string, string>,
    workdir: string | undefined,
    timeoutSecs: number | undefined,
    pipeStdout: boolean,
    pipeStderr: boolean,
  ): MockProcess {
    this.touch();
    return new MockProcess({
      argv,
      cwd: this.hostPath(workdir),
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: this.root,
        LANG: "C.UTF-8",
        ...this.spec.env,
        ...env,
        MODAL_TASK_ID: this.taskId,
        MODAL_SANDBOX_ID: this.id,
      },
      timeoutSecs,
      pipeStdout,
      pipeStderr,
    });
  }

  /** Idle timeout: no exec running and none started for `idleTimeoutSecs` ends the sandbox (status 7). */
  private touch(): void {
    if (this.spec.idleTimeoutSecs <= 0 || !this.running) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const busy = [...this.execs.values()].some((exec) => exec.exit === undefined);
      if (busy) this.touch();
      else this.finish({ status: GENERIC_STATUS.idleTimeout, exitcode: 0, exception: "idle timeout" });
    }, this.spec.idleTimeoutSecs * 1000);
    this.idleTimer.unref();
  }

  finish(result: SandboxResult): void {
    if (!this.running) return;
    this.result = result;
    clearTimeout(this.lifetimeTimer);
    clearTimeout(this.idleTimer);
    this.entrypoint?.kill();
    for (const exec of this.execs.values()) exec.kill();
    for (const wake of this.finishedWaiters.splice(0)) wake();
  }

  terminate(): void {
    this.finish({ status: GENERIC_STATUS.terminated, exitcode: 137, exception: "terminated" });
  }

  /** Resolves when the sandbox finishes or after `timeoutMs`, whichever comes first. */
  async waitFinished(timeoutMs: number): Promise<void> {
    if (!this.running || timeoutMs <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.finishedWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  removeFiles(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
