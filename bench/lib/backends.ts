import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sandbox } from "modal";
import { LocalBackend } from "../../src/backends/local/backend.ts";
import type { ModalBackend } from "../../src/backends/modal/backend.ts";
import { startMockModalBackend } from "../../test/support/modal.ts";
import type { ExecRequest, SandboxBackend, SandboxRef } from "../../src/backends/types.ts";

/** The baseline a slot-layer tool call is compared with: the same command with nothing of ours around it. */
export type RawExec = (sandbox: SandboxRef, request: ExecRequest) => Promise<unknown>;

export interface BenchBackend {
  backend: SandboxBackend;
  /** Raw exec of the backend's own client; the backend's `exec` when it has no other client (local). */
  rawExec: RawExec;
  teardown: () => Promise<void>;
}

/**
 * A bare SDK `sb.exec` of the exact argv, workdir and env the modal backend runs for that slot command (planned
 * once per sandbox, slot and command, outside the timed call), with stdout and stderr read and the exit awaited.
 */
function rawModalExec(backend: ModalBackend): RawExec {
  const planned = new Map<string, Promise<{ handle: Sandbox; argv: string[]; workdir: string; env: Record<string, string> }>>();
  return async (sandbox, request) => {
    const key = JSON.stringify([sandbox.id, request.slot, request.command]);
    let plan = planned.get(key);
    if (plan === undefined) {
      plan = Promise.all([backend.client.sandboxes.fromId(sandbox.id), backend.planExec(sandbox, request)]).then(([handle, exec]) => ({
        handle,
        ...exec,
      }));
      planned.set(key, plan);
    }
    const { handle, argv, workdir, env } = await plan;
    const proc = await handle.exec(argv, { workdir, env, timeoutMs: request.timeoutMs });
    const [exitCode] = await Promise.all([proc.wait(), proc.stdout.readText(), proc.stderr.readText()]);
    return exitCode;
  };
}

/** Backends the slot bench can run on (`--backend`). */
export const benchBackends: Record<string, () => Promise<BenchBackend>> = {
  local: async () => {
    const rootDir = await mkdtemp(join(tmpdir(), "hermes-bench-slots-"));
    const backend = await LocalBackend.open({ rootDir });
    return {
      backend,
      rawExec: (sandbox, request) => backend.exec(sandbox, request),
      teardown: () => rm(rootDir, { recursive: true, force: true }),
    };
  },
  /** The real SDK against the in-process mock Modal (sandboxes are processes on this host). */
  modal: async () => {
    const { backend, mock } = await startMockModalBackend({ backend: { appName: "hermes-bench", maxConcurrentCreates: 8 } });
    return { backend, rawExec: rawModalExec(backend), teardown: () => mock.close() };
  },
};
