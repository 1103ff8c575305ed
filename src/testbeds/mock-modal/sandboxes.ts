import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { rmSync } from "node:fs";
import { posix } from "node:path";
import { promisify } from "node:util";
import type { ImageConfig } from "../../backends/images/unpack.ts";
import type { MockImage } from "./images.ts";
import { MockProcess } from "./process.ts";

const run = promisify(execFile);

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
  /** The sandbox's working directory as its clients name it (a host sandbox maps it onto its root). */
  workdir: string;
  env: Record<string, string>;
  entrypointArgs: readonly string[];
  /** Where the client asked Modal to place the sandbox (recorded, not acted on). */
  regions: readonly string[];
  v1: boolean;
}

/** A new sandbox's id and root directory: empty for a host image, a copy of the image's rootfs otherwise. */
export interface SandboxRoot {
  id: string;
  dir: string;
  /** Set when the root is an image's rootfs: commands then run with it as `/` (bubblewrap). */
  image: ImageConfig | undefined;
  remove(): void;
}

/**
 * Where an image sandbox knowingly differs from Modal (no test depends on these): a command that is not in the image
 * exits 1 with bubblewrap's "execvp" message (Modal: an exec error); processes run as the mock's own user with the
 * host's network.
 *
 * Each sandbox gets its own copy of the image (`cp -a`, reflinked where the filesystem can), because a container's
 * writes are its own; bubblewrap 0.8 (Debian bookworm) has no overlay mounts. The sandbox workdir is created, so a
 * sandbox can start in it as in the image's WORKDIR.
 */
export async function prepareSandboxRoot(dataDir: string, v1: boolean, image: MockImage, workdir: string): Promise<SandboxRoot> {
  const id = v1 ? mintId("sb") : mintId("sb", 26);
  const dir = posix.join(dataDir, id);
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    if (image.kind === "host") {
      await mkdir(dir, { recursive: true });
      return { id, dir, image: undefined, remove };
    }
    await run("cp", ["-a", "--reflink=auto", image.unpacked.rootfs, dir]);
    await mkdir(posix.join(dir, workdir || image.unpacked.config.workingDir), { recursive: true });
    return { id, dir, image: image.unpacked.config, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

/** Docker's PATH for images that set none. */
const DEFAULT_IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * A mock sandbox: a root directory on this host and real processes started in it; for an image sandbox, that root
 * is the image's filesystem and processes see it as `/` (bubblewrap with /proc and /dev, as root-capable as the
 * host user). Its lifetime is enforced
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

  private readonly image: ImageConfig | undefined;

  constructor(spec: SandboxSpec, root: SandboxRoot) {
    this.spec = spec;
    this.id = root.id;
    this.tags = new Map(spec.tags);
    this.root = root.dir;
    this.image = root.image;
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

  /** A host sandbox's path for a client path: the sandbox workdir (and below) lives in the root; relative paths start there. */
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
    const sandboxEnv = { ...this.spec.env, ...env, MODAL_TASK_ID: this.taskId, MODAL_SANDBOX_ID: this.id };
    const common = { timeoutSecs, pipeStdout, pipeStderr };
    const hostEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      LANG: "C.UTF-8",
    };
    if (this.image === undefined) {
      return new MockProcess({ argv, cwd: this.hostPath(workdir), env: { ...hostEnv, HOME: this.root, ...sandboxEnv }, ...common });
    }
    // bwrap itself is found on the host PATH; the command gets exactly the image's environment.
    const imageEnv: Record<string, string> = { PATH: DEFAULT_IMAGE_PATH, HOME: "/root", ...this.image.env, ...sandboxEnv };
    const cwd = workdir || this.spec.workdir || this.image.workingDir;
    const bwrap = ["bwrap", "--bind", this.root, "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--die-with-parent"];
    const setenv = Object.entries(imageEnv).flatMap(([key, value]) => ["--setenv", key, value]);
    return new MockProcess({
      argv: [...bwrap, "--clearenv", ...setenv, "--chdir", cwd, "--", ...argv],
      cwd: this.root,
      env: hostEnv,
      ...common,
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
