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
  /** The mock's address and credentials, for more backends on the same mock. */
  connection: Required<Pick<ModalBackendOptions, "serverUrl" | "tokenId" | "tokenSecret">>;
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
 * Starts the mock and a backend talking to it, its address and credentials passed as options (the backend sets
 * MODAL_SERVER_URL only while it builds its SDK client), so the process environment is left as it was.
 */
export async function startMockModalBackend(
  options: { mock?: MockModalOptions; backend?: Partial<ModalBackendOptions> } = {},
): Promise<MockModalBackend> {
  const mock = await startMockModal(options.mock);
  const connection = {
    serverUrl: mock.url,
    tokenId: options.mock?.tokenId ?? "ak-mock",
    tokenSecret: options.mock?.tokenSecret ?? "as-mock",
  };
  const backend = new ModalBackend({ appName: "hermes-test", maxThrottleWaitSecs: 10, ...connection, ...options.backend });
  return {
    mock,
    backend,
    connection,
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

/**
 * Runs `build` in a process whose environment names the Modal server, as a user's would, and restores it after:
 * for what the SDK only takes from MODAL_SERVER_URL (a raw client, a pool spec without serverURL).
 */
export async function withModalServerUrl<T>(url: string, build: () => T | Promise<T>): Promise<T> {
  const previous = process.env.MODAL_SERVER_URL;
  process.env.MODAL_SERVER_URL = url;
  try {
    return await build();
  } finally {
    if (previous === undefined) delete process.env.MODAL_SERVER_URL;
    else process.env.MODAL_SERVER_URL = previous;
  }
}
