import type { Sandbox } from "modal";
import type { SandboxInfo, SandboxTemplate } from "../../src/backends/types.ts";
import { ModalBackend, type ModalBackendOptions } from "../../src/backends/modal/backend.ts";
import { startMockModal, type MockModal, type MockModalOptions } from "../../src/testbeds/mock-modal/server.ts";

/**
 * For tests and bench/slots: a mock Modal server, a ModalBackend on the real SDK pointed at it over gRPC, and
 * optionally one ready sandbox with its raw SDK handle (to compare the slot layer with a bare `sb.exec`).
 */
export interface MockModalBackend {
  mock: MockModal;
  backend: ModalBackend;
  close(): Promise<void>;
}

export interface MockModalSandbox extends MockModalBackend {
  template: SandboxTemplate;
  sandbox: SandboxInfo;
  /** The same sandbox as a bare SDK handle. */
  rawSandbox: Sandbox;
}

export function mockTemplate(pool: string, overrides: Partial<SandboxTemplate> = {}): SandboxTemplate {
  return {
    pool,
    image: "debian:12-slim",
    slots: 2,
    cpu: 1,
    memoryMiB: 1024,
    lifetimeSeconds: 600,
    idleTimeoutSeconds: 300,
    templateHash: "t0",
    ...overrides,
  };
}

/**
 * Starts the mock and a backend talking to it. Sets MODAL_SERVER_URL (and dummy credentials unless some are set)
 * in this process before the SDK client is built: the SDK has no other way to choose its server.
 */
export async function startMockModalBackend(
  options: { mock?: MockModalOptions; backend?: Partial<ModalBackendOptions> } = {},
): Promise<MockModalBackend> {
  const mock = await startMockModal(options.mock);
  process.env.MODAL_SERVER_URL = mock.url;
  process.env.MODAL_TOKEN_ID ??= options.mock?.tokenId ?? "ak-mock";
  process.env.MODAL_TOKEN_SECRET ??= options.mock?.tokenSecret ?? "as-mock";
  const backend = new ModalBackend({ appName: "hermes-test", maxThrottleWaitSecs: 10, ...options.backend });
  return {
    mock,
    backend,
    async close() {
      await backend.close();
      await mock.close();
    },
  };
}

/** `startMockModalBackend` plus one created sandbox (slot dirs made, isolation probed) and its raw SDK handle. */
export async function startMockModalSandbox(
  options: { mock?: MockModalOptions; backend?: Partial<ModalBackendOptions>; template?: Partial<SandboxTemplate> } = {},
): Promise<MockModalSandbox> {
  const started = await startMockModalBackend(options);
  const template = mockTemplate("bench", options.template);
  const sandbox = await started.backend.create(`${template.pool}-0`, template);
  const rawSandbox = await started.backend.client.sandboxes.fromId(sandbox.id);
  return { ...started, template, sandbox, rawSandbox };
}
