import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type { ExecResult } from "./types.ts";
import { HAND_OVER_BLOCK_FD, HAND_OVER_INFO_FD, prepareHandOver, type HandOver } from "./hand-over.ts";

/** How one slot command is spawned (built by isolation.ts). */
export interface SpawnPlan {
  file: string;
  args: string[];
  /** Where the spawned process starts (the slot directory itself without isolation). */
  cwd: string;
  /** The whole environment: the host's is never inherited, so its secrets do not leak into slots. */
  env: Record<string, string>;
  /** Set when bwrap waits for the spawner before it runs the command (its cgroups, its network: hand-over.ts). */
  handOver?: HandOver;
}

/** Per stream, when the request sets no cap. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1_000_000;
export const TIMEOUT_EXIT_CODE = 124;
/** How long output may still arrive once the command is gone; past it, whoever holds its pipes is cut off. */
export const PIPE_GRACE_MS = 200;

export interface RunOptions {
  timeoutMs: number;
  maxOutputBytes?: number;
  stdin?: string;
  /**
   * Also kill every process of the command's session, not only its process group (a job-control shell moves its
   * jobs to groups of their own). For commands without a pid namespace; under bwrap its init ends them all.
   */
  killSession?: boolean;
}

export interface RunningProcess {
  readonly result: Promise<ExecResult>;
  /** Kills the whole process group, and session if asked (e.g. on slot reset); the result then reports the signal. */
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
 * Spawns a plan in its own session and process group so a timeout or reset kills everything it started.
 * Timeout: exit code 124 and `timedOut`. A command that cannot start is exit 127 with the reason on stderr.
 * A command's end is its end: once it exited (or was killed) the result comes within PIPE_GRACE_MS, even when a
 * process that escaped the kill (a `setsid` daemon without a pid namespace) still holds its stdout.
 */
export function startProcess(plan: SpawnPlan, options: RunOptions): RunningProcess {
  const started = performance.now();
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const stdout = new TailBuffer(limit);
  const stderr = new TailBuffer(limit);
  let child: ChildProcessWithoutNullStreams;
  // A hand-over takes two more fds.
  const stdio: "pipe"[] = plan.handOver === undefined ? ["pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe", "pipe", "pipe"];
  try {
    child = spawn(plan.file, plan.args, { cwd: plan.cwd, env: plan.env, detached: true, stdio }) as ChildProcessWithoutNullStreams;
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
  let stopHandOver: (() => void) | undefined;
  const killGroup = (): void => {
    if (child.pid === undefined || closed) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // ESRCH: the group is already gone
    }
    if (options.killSession === true) killSession(child.pid);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, options.timeoutMs);
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on("error", () => undefined); // a command that ignores stdin closes the pipe early
  child.stdin.end(options.stdin ?? "");
  if (plan.handOver !== undefined && child.pid !== undefined) {
    // bwrap closes both when it is done with them (or dies): their errors are its exit's to tell.
    for (const fd of [HAND_OVER_INFO_FD, HAND_OVER_BLOCK_FD]) child.stdio[fd]?.on("error", () => undefined);
    prepareHandOver(plan.handOver, child.stdio[HAND_OVER_INFO_FD] as Readable, child.pid).then(
      (stop) => {
        stopHandOver = stop;
        if (closed) stop();
        else (child.stdio[HAND_OVER_BLOCK_FD] as Writable).end("1");
      },
      (error: unknown) => {
        stderr.push(Buffer.from(`cannot prepare the slot command: ${(error as Error).message}\n`));
        killGroup();
      },
    );
  }

  const result = new Promise<ExecResult>((resolve) => {
    const finish = (exitCode: number): void => {
      clearTimeout(timer);
      stopHandOver?.();
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
    const exitCode = (code: number | null, signal: NodeJS.Signals | null): number =>
      code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
    // Leftover background processes would hold the pipes open: when the command exits, its group goes too, and
    // what escaped it loses the pipes after the grace.
    child.once("exit", (code, signal) => {
      killGroup();
      setTimeout(() => {
        if (closed) return;
        closed = true;
        child.stdout.destroy();
        child.stderr.destroy();
        finish(exitCode(code, signal));
      }, PIPE_GRACE_MS).unref();
    });
    child.once("close", (code, signal) => {
      if (closed) return;
      closed = true;
      finish(exitCode(code, signal));
    });
  });
  return { result, kill: killGroup };
}

/** SIGKILLs every process whose session is `leader`'s (Linux /proc; a process that ran setsid is not among them). */
function killSession(leader: number): void {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name (which may hold spaces): state ppid pgrp session ...
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const session = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
      if (session === leader) process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

function cannotStart(plan: SpawnPlan, error: Error): Buffer {
  return Buffer.from(`cannot start ${plan.file}: ${error.message}\n`);
}
