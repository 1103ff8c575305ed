import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { runBackendContract } from "./contract.ts";

// The assertions live in contract.ts: one suite, run against every backend.
runBackendContract("local", async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "hermes-local-contract-"));
  const backend = await LocalBackend.open({ rootDir });
  return {
    backend,
    template: {
      pool: "contract",
      image: "host",
      slots: 2,
      cpu: 1,
      memoryMiB: 512,
      lifetimeSeconds: 600,
      idleTimeoutSeconds: 0,
      templateHash: "contract-v1",
    },
    teardown: () => rm(rootDir, { recursive: true, force: true }),
  };
});
