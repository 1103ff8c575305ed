import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { contractTemplate, runBackendContract } from "./contract.ts";

// The assertions live in contract.ts: one suite, run against every backend.
runBackendContract("local", async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "hermes-local-contract-"));
  const backend = await LocalBackend.open({ rootDir });
  return {
    backend,
    template: contractTemplate(),
    teardown: () => rm(rootDir, { recursive: true, force: true }),
  };
});
