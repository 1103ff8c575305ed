import { startMockModalBackend } from "../../support/modal.ts";
import { contractTemplate, runBackendContract } from "./contract.ts";

// The real modal@0.11.1 SDK talking to our mock over gRPC (its address passed to the backend).
// The assertions live in contract.ts: one suite, run against every backend.
runBackendContract("modal (real SDK against mock-modal)", async () => {
  const { backend, mock } = await startMockModalBackend({ backend: { appName: "hermes-contract", maxConcurrentCreates: 4 } });
  return {
    backend,
    template: contractTemplate({ image: "debian:12-slim" }),
    teardown: () => mock.close(),
  };
});
