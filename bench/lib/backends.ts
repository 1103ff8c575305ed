import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalBackend } from "../../src/backends/local/backend.ts";
import type { SandboxBackend } from "../../src/backends/types.ts";

export interface BenchBackend {
  backend: SandboxBackend;
  teardown: () => Promise<void>;
}

/**
 * Backends the slot bench can run on. `modal` is the hook for the Modal helper: it should start the mock
 * Modal server, point the real SDK at it and return the modal backend, so `toolCallVsRawExecRatio` compares the
 * slot layer with a raw `sb.exec` of the SDK.
 */
export const benchBackends: Record<string, () => Promise<BenchBackend>> = {
  local: async () => {
    const rootDir = await mkdtemp(join(tmpdir(), "hermes-bench-slots-"));
    const backend = await LocalBackend.open({ rootDir });
    return { backend, teardown: () => rm(rootDir, { recursive: true, force: true }) };
  },
  modal: async () => {
    throw new Error("bench --backend modal is not wired yet: bench/lib/backends.ts `modal` must start the mock Modal server and return the modal backend");
  },
};
