import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:os";

/**
 * One real host process behind a mock exec (or a sandbox entrypoint). Its output is kept whole and addressed by
 * byte offset, because the SDK resumes streams by offset and often reads only after the process has exited.
 * Stdin writes carry offsets too; re-sent ranges are ignored (the SDK retries them).
 */
export class OutputLog {
  private data = Buffer.alloc(0);
  private closed = false;
  private waiters: Array<() => void> = [];

  append(chunk: Buffer): void {
    if (this.closed) return;
    this.data = Buffer.concat([this.data, chunk]);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  get length(): number {
    return this.data.length;
  }

  /** Yields everything from `offset` on, waiting for more, until the log is closed or `signal` aborts. */
  async *read(offset: number, signal?: AbortSignal): AsyncGenerator<{ data: Buffer; offset: number }> {
    let position = offset;
    for (;;) {
      if (position < this.data.length) {
        const chunk = this.data.subarray(position);
        yield { data: chunk, offset: position };
        position += chunk.length;
        continue;
      }
      if (this.closed || signal?.aborted) return;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        signal?.addEventListener("abort", () => resolve(), { once: true });
      });
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

export type ProcessExit = { code: number } | { signal: number };

export interface ProcessSpec {
  argv: readonly string[];
  cwd: string;
  env: Record<string, string>;
  timeoutSecs?: number;
  /** Without a pipe the stream goes to /dev/null, as Modal's DEVNULL config. */
  pipeStdout: boolean;
  pipeStderr: boolean;
}

/** After the main process exits, how long leftover children may keep the pipes open before the log is closed. */
const PIPE_GRACE_MS = 200;

export class MockProcess {
  readonly stdout = new OutputLog();
  readonly stderr = new OutputLog();
  exit: ProcessExit | undefined;
  private readonly child: ChildProcess;
  private stdinOffset = 0;
  private stdinClosed = false;
  private readonly exited: Promise<ProcessExit>;
  private timer: NodeJS.Timeout | undefined;

  constructor(spec: ProcessSpec) {
    const [file, ...args] = spec.argv;
    this.child = spawn(file ?? "", args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ["pipe", spec.pipeStdout ? "pipe" : "ignore", spec.pipeStderr ? "pipe" : "ignore"],
    });
    this.child.stdout?.on("data", (chunk: Buffer) => this.stdout.append(chunk));
    this.child.stderr?.on("data", (chunk: Buffer) => this.stderr.append(chunk));
    this.child.stdin?.on("error", () => undefined); // the command may close stdin early
    this.child.once("close", () => this.closeOutput());
    if (!spec.pipeStdout) this.stdout.close();
    if (!spec.pipeStderr) this.stderr.close();
    if (spec.timeoutSecs !== undefined && spec.timeoutSecs > 0) {
      this.timer = setTimeout(() => this.kill(), spec.timeoutSecs * 1000);
    }
    this.exited = new Promise((resolve) => {
      this.child.once("error", (error) => {
        this.stderr.append(Buffer.from(`${error.message}\n`));
        this.finish({ code: 127 }, resolve);
      });
      this.child.once("exit", (code, signal) => {
        const exit: ProcessExit = code !== null ? { code } : { signal: constants.signals[signal ?? "SIGKILL"] ?? 9 };
        this.finish(exit, resolve);
      });
    });
  }

  private finish(exit: ProcessExit, resolve: (exit: ProcessExit) => void): void {
    if (this.exit !== undefined) return;
    clearTimeout(this.timer);
    this.exit = exit;
    // Leftover background children would hold the pipes open forever; the exec is over, so its group goes too.
    setTimeout(() => {
      if (this.outputClosed) return;
      this.killGroup();
      this.closeOutput();
    }, PIPE_GRACE_MS).unref();
    resolve(exit);
  }

  private outputClosed = false;

  private closeOutput(): void {
    this.outputClosed = true;
    this.stdout.close();
    this.stderr.close();
  }

  wait(): Promise<ProcessExit> {
    return this.exited;
  }

  /** Writes `data` found at byte `offset` of the stdin stream; bytes already written are skipped. */
  writeStdin(offset: number, data: Uint8Array, eof: boolean): void {
    const stdin = this.child.stdin;
    if (stdin === null || this.stdinClosed) return;
    const skip = Math.max(0, this.stdinOffset - offset);
    if (skip < data.length && offset <= this.stdinOffset) {
      stdin.write(data.subarray(skip));
      this.stdinOffset = offset + data.length;
    }
    if (eof) {
      this.stdinClosed = true;
      stdin.end();
    }
  }

  get stdinStatus(): { numBytesWritten: number; closed: boolean } {
    return { numBytesWritten: this.stdinOffset, closed: this.stdinClosed };
  }

  kill(): void {
    this.killGroup();
  }

  private killGroup(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {
      // ESRCH: already gone
    }
  }
}
