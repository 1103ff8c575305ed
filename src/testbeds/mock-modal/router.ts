import { ServerError, Status, type CallContext } from "nice-grpc";
import type { MockProcess } from "./process.ts";
import { GENERIC_STATUS, type MockSandbox } from "./sandboxes.ts";
import type { MockModalState } from "./state.ts";

/**
 * Handlers of `modal.task_command_router.TaskCommandRouter`: exec start/wait/poll, offset-addressed stdio,
 * offset-idempotent stdin, and the V2 entrypoint stdio. Execs are real host processes in the sandbox root (for an image
 * sandbox, under bubblewrap with that root as `/`).
 */
type Handler = (request: never, context: CallContext) => unknown;

interface ExecStartRequest {
  taskId: string;
  execId: string;
  commandArgs: string[];
  stdoutConfig: number;
  stderrConfig: number;
  timeoutSecs?: number;
  workdir?: string;
  env: Record<string, string>;
  secretSources: Array<{ secretId?: string; env?: { contents: Record<string, string> } }>;
}
interface ExecRef {
  taskId: string;
  execId: string;
}

/** TaskExecWait answers within this; the SDK calls again (it caps each call at 60 s itself). */
const EXEC_WAIT_ROUND_MS = 50_000;
/** fileDescriptor values of TaskExecStdioRead / SandboxStdioReadV2. */
const STDERR_FD = 1;

export function routerHandlers(state: MockModalState): Record<string, Handler> {
  const liveSandbox = (taskId: string): MockSandbox => {
    const sandbox = state.sandboxByTask(taskId);
    if (!sandbox.running) throw new ServerError(Status.FAILED_PRECONDITION, `task ${taskId} has finished`);
    return sandbox;
  };

  const execOf = (request: ExecRef): MockProcess => {
    const exec = state.sandboxByTask(request.taskId).execs.get(request.execId);
    if (exec === undefined) throw new ServerError(Status.NOT_FOUND, `exec ${request.execId} not found`);
    return exec;
  };

  const handlers = {
    taskExecStart: (request: ExecStartRequest) => {
      const sandbox = liveSandbox(request.taskId);
      const env: Record<string, string> = { ...request.env };
      for (const source of request.secretSources) {
        if (source.secretId) Object.assign(env, state.secretsById.get(source.secretId));
        if (source.env) Object.assign(env, source.env.contents);
      }
      const options = {
        env,
        pipeStdout: request.stdoutConfig === 1,
        pipeStderr: request.stderrConfig === 1,
        ...(request.workdir !== undefined ? { workdir: request.workdir } : {}),
        ...(request.timeoutSecs !== undefined ? { timeoutSecs: request.timeoutSecs } : {}),
      };
      const isNew = !sandbox.execs.has(request.execId);
      sandbox.exec(request.execId, request.commandArgs, options);
      const dieAfterMs = isNew ? state.faults.takeDieMidExec() : undefined;
      if (dieAfterMs !== undefined) {
        setTimeout(
          () => sandbox.finish({ status: GENERIC_STATUS.failure, exitcode: 1, exception: "injected fault: sandbox died" }),
          dieAfterMs,
        ).unref();
      }
      return {};
    },
    taskExecStdioRead: async function* (request: ExecRef & { offset: number; fileDescriptor: number }, context: CallContext) {
      const exec = execOf(request);
      const log = request.fileDescriptor === STDERR_FD ? exec.stderr : exec.stdout;
      for await (const chunk of log.read(request.offset, context.signal)) yield { data: chunk.data };
    },
    taskExecWait: async (request: ExecRef, context: CallContext) => {
      const exec = execOf(request);
      const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), EXEC_WAIT_ROUND_MS).unref());
      const aborted = new Promise<undefined>((resolve) =>
        context.signal.addEventListener("abort", () => resolve(undefined), { once: true }),
      );
      const exit = await Promise.race([exec.wait(), timeout, aborted]);
      if (exit === undefined) throw new ServerError(Status.DEADLINE_EXCEEDED, `exec ${request.execId} still running`);
      return exit;
    },
    taskExecPoll: (request: ExecRef) => execOf(request).exit ?? {},
    taskExecStdinWrite: (request: ExecRef & { offset: number; data: Uint8Array; eof: boolean }) => {
      execOf(request).writeStdin(request.offset, request.data, request.eof);
      return {};
    },
    /** Client-streamed stdin (filesystem uploads): a `start` with the exec, then `data` chunks, then `end`. */
    taskExecStdinWriteStream: async (
      requests: AsyncIterable<{ start?: ExecRef & { offset?: number }; data?: Uint8Array; end?: object }>,
    ) => {
      let exec: MockProcess | undefined;
      let offset = 0;
      for await (const message of requests) {
        if (message.start) {
          exec = execOf(message.start);
          offset = message.start.offset ?? exec.stdinStatus.numBytesWritten;
        }
        if (exec === undefined) throw new ServerError(Status.INVALID_ARGUMENT, "stdin stream must start with `start`");
        if (message.data) {
          exec.writeStdin(offset, message.data, false);
          offset += message.data.length;
        }
        if (message.end) exec.writeStdin(offset, new Uint8Array(0), true);
      }
      return {};
    },
    taskExecStdinStatus: (request: ExecRef) => execOf(request).stdinStatus,
    sandboxStdioReadV2: async function* (request: { taskId: string; offset: number; fileDescriptor: number }, context: CallContext) {
      const entrypoint = state.sandboxByTask(request.taskId).entrypoint;
      if (entrypoint === undefined) return;
      const log = request.fileDescriptor === STDERR_FD ? entrypoint.stderr : entrypoint.stdout;
      for await (const chunk of log.read(request.offset, context.signal)) yield { data: chunk.data, startingOffset: chunk.offset };
    },
    sandboxStdinWriteV2: (request: { taskId: string; offset: number; data: Uint8Array; eof: boolean }) => {
      state.sandboxByTask(request.taskId).entrypoint?.writeStdin(request.offset, request.data, request.eof);
      return {};
    },
  };
  return handlers as unknown as Record<string, Handler>;
}
