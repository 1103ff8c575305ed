import type { ModalClient } from "modal";
import { startMockModal, type MockModal, type MockModalOptions } from "../../../src/testbeds/mock-modal/server.ts";
import { withModalServerUrl } from "../../support/modal.ts";

/**
 * A mock plus a raw SDK client pointed at it. The SDK reads MODAL_SERVER_URL when a client is constructed,
 * so it is set for that moment; credentials are passed explicitly (any pair works unless the mock is configured).
 */
export async function mockWithClient(
  options: MockModalOptions = {},
  credentials: { tokenId: string; tokenSecret: string } = { tokenId: "ak-test", tokenSecret: "as-test" },
): Promise<{ mock: MockModal; modal: ModalClient }> {
  const mock = await startMockModal(options);
  const { ModalClient } = await import("modal");
  const modal = await withModalServerUrl(mock.url, () => new ModalClient({ ...credentials, logLevel: "error" }));
  return { mock, modal };
}
