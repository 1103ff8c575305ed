import { NomadBackend } from "../../../src/backends/nomad/backend.ts";
import { startFakeNomad } from "../../../src/testbeds/fake-nomad/server.ts";
import { contractTemplate, runBackendContract } from "./contract.ts";

// The nomad backend against the fake Nomad: every sandbox is a Nomad job whose allocation runs the real
// sandbox server as a local process (raw_exec), reached at the address from the allocation listing.
// The assertions live in contract.ts: one suite, run against every backend.
runBackendContract("nomad (fake Nomad, raw_exec)", async () => {
  const fake = await startFakeNomad({ aclToken: "contract-acl" });
  const backend = new NomadBackend({
    address: fake.url,
    token: "contract-acl",
    sandboxToken: "contract-shared",
    readyTimeoutMs: 20_000,
    env: {},
  });
  return {
    backend,
    template: contractTemplate({ cpu: 0.5, memoryMiB: 256 }),
    teardown: () => fake.close(),
  };
});
