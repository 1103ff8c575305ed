import type { ContainerProcess, Sandbox } from "modal";
import { DEFAULT_MAX_OUTPUT_BYTES, TailBuffer, TIMEOUT_EXIT_CODE } from "../process.ts";
import type { ExecResult } from "../types.ts";
import { toSandboxError } from "./errors.ts";
import { EXEC_DEADLINE_SLACK_MS, KILLED_EXIT_CODE, wholeSecondsMs } from "./plan.ts";

export interface RunOptions {
  workdir?: string;
  env?: Record<string, string>;
  stdin?: string | Uint8Array;
  maxOutputBytes?: number;
}

/** Leeway before a run counts as having used its whole timeout (timer and SDK deadlines are not exact). */
const TIMEOUT_MARGIN_MS = 50;

/** One `sb.exec`: output read concurrently with the wait, tails kept; a timeout (ours or the SDK's) is 124. */
export async function runProcess(
  sandbox: Sandbox,
  argv: string[],
  timeoutMs: number,
  /** Throws SandboxError "gone" when the sandbox has finished. */
  assertRunning: () => Promise<void>,
  options: RunOptions = {},
): Promise<ExecResult> {
  const started = performance.now();
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const stdout = new TailBuffer(limit);
  const stderr = new TailBuffer(limit);
  let exitCode: number;
  let proc: ContainerProcess<Uint8Array>;
  try {
    proc = await sandbox.exec(argv, {
      mode: "binary",
      timeoutMs: wholeSecondsMs(timeoutMs) + EXEC_DEADLINE_SLACK_MS,
      ...(options.workdir !== undefined ? { workdir: options.workdir } : {}),
      ...(options.env !== undefined ? { env: options.env } : {}),
    });
    const writer = proc.stdin.getWriter();
    // Closing stdin overlaps with the run; commands that read stdin must see EOF, not hang.
    const stdinDone = (
      options.stdin !== undefined
        ? writer.write(typeof options.stdin === "string" ? Buffer.from(options.stdin) : options.stdin)
        : Promise.resolve()
    )
      .then(() => writer.close())
      .catch(() => undefined);
    const drain = async (stream: ReadableStream<Uint8Array>, buffer: TailBuffer) => {
      for await (const chunk of stream) buffer.push(Buffer.from(chunk));
    };
    const [code] = await Promise.all([proc.wait(), drain(proc.stdout, stdout), drain(proc.stderr, stderr), stdinDone]);
    exitCode = code;
  } catch (error) {
    if (error instanceof Error && /Deadline exceeded while waiting for exec/.test(error.message)) exitCode = TIMEOUT_EXIT_CODE;
    else {
      await assertRunning();
      throw toSandboxError(error, "exec");
    }
  }
  const durationMs = performance.now() - started;
  const overran = durationMs + TIMEOUT_MARGIN_MS >= timeoutMs;
  // `timeout -k` exits 137 after SIGKILLing a command that ignored SIGTERM: still a timeout, unless the
  // sandbox itself died meanwhile (also 137), which assertRunning reports as gone.
  if (exitCode === KILLED_EXIT_CODE && overran) {
    await assertRunning();
    exitCode = TIMEOUT_EXIT_CODE;
  }
  const timedOut = exitCode === TIMEOUT_EXIT_CODE && overran;
  return {
    exitCode,
    stdout: stdout.text(),
    stderr: stderr.text(),
    durationMs,
    timedOut,
    truncated: stdout.truncated || stderr.truncated,
  };
}
