import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { constants } from "node:os";
import type { ExecResult } from "./types.ts";
import type { SpawnPlan } from "./isolation.ts";

/** Per stream, when the request sets no cap. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1_000_000;
export const TIMEOUT_EXIT_CODE = 124;

export interface RunOptions {
  timeoutMs: number;
  maxOutputBytes?: number;
  stdin?: string;
}

export interface RunningProcess {
  readonly result: Promise<ExecResult>;
  /** Kills the whole process group (e.g. on slot reset); the result then reports the signal. */
  kill(): void;
}

/** Keeps the last `limit` bytes of a stream, as the original terminal tool kept the tail. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit) {
      this.truncated = true;
      const head = this.chunks[0];
      if (head === undefined) break;
      const excess = this.size - this.limit;
      if (head.length <= excess) {
        this.chunks.shift();
        this.size -= head.length;
      } else {
        this.chunks[0] = head.subarray(excess);
        this.size -= excess;
      }
    }
  }

  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/**
 * Spawns a plan in its own process group so a timeout or reset kills everything it started.
 * Timeout: exit code 124 and `timedOut`. A command that cannot start is exit 127 with the reason on stderr.
 */
export function startProcess(plan: SpawnPlan, options: RunOptions): RunningProcess {
  const started = performance.now();
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const stdout = new TailBuffer(limit);
  const stderr = new TailBuffer(limit);
  let child: ChildProcessWithoutNullStreams;
  try {
    child = spawn(plan.file, plan.args, { cwd: plan.cwd, env: plan.env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
  } catch (error) {
    // Arguments spawn refuses outright (e.g. a NUL byte in a model's command) throw before any process exists.
    stderr.push(cannotStart(plan, error as Error));
    const result = {
      exitCode: 127,
      stdout: "",
      stderr: stderr.text(),
      durationMs: performance.now() - started,
      timedOut: false,
      truncated: stderr.truncated,
    };
    return { result: Promise.resolve(result), kill: () => undefined };
  }
  let timedOut = false;
  let closed = false;
  const killGroup = (): void => {
    if (child.pid === undefined || closed) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // ESRCH: the group is already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, options.timeoutMs);
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on("error", () => undefined); // a command that ignores stdin closes the pipe early
  child.stdin.end(options.stdin ?? "");

  const result = new Promise<ExecResult>((resolve) => {
    const finish = (exitCode: number): void => {
      clearTimeout(timer);
      resolve({
        exitCode: timedOut ? TIMEOUT_EXIT_CODE : exitCode,
        stdout: stdout.text(),
        stderr: stderr.text(),
        durationMs: performance.now() - started,
        timedOut,
        truncated: stdout.truncated || stderr.truncated,
      });
    };
    child.once("error", (error: NodeJS.ErrnoException) => {
      stderr.push(cannotStart(plan, error));
      finish(127);
    });
    // Leftover background processes would hold the pipes open: when the command exits, its group goes too.
    child.once("exit", killGroup);
    child.once("close", (code, signal) => {
      closed = true;
      finish(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
    });
  });
  return { result, kill: killGroup };
}

function cannotStart(plan: SpawnPlan, error: Error): Buffer {
  return Buffer.from(`cannot start ${plan.file}: ${error.message}\n`);
}
