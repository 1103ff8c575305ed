import assert from "node:assert/strict";
import { test } from "node:test";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import type { NomadBackend } from "../../../src/backends/nomad/backend.ts";
import { backendFactory } from "../../../src/operator/backends.ts";
import { recordingClient } from "./fakes.ts";

const poolSpec = (spec: Record<string, unknown>) => {
  const result = validateSandboxPoolSpec(spec);
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
};

const pem = (what: string) => `-----BEGIN ${what}-----\nAAAA\n-----END ${what}-----\n`;

test("nomad pool in the controller: ACL token and TLS from the pool's Secrets win over the controller's environment", async () => {
  const { client } = recordingClient({
    secrets: {
      "ns/nomad-acl": { token: "acl-from-secret" },
      "ns/nomad-tls": { "ca.crt": pem("CA"), "tls.crt": pem("CERT"), "tls.key": pem("KEY") },
    },
  });
  const spec = poolSpec({
    backend: "nomad",
    nomad: {
      address: "https://127.0.0.1:4646",
      namespace: "rl",
      driver: "raw_exec",
      tokenSecretRef: { name: "nomad-acl", key: "token" },
      tlsSecretRef: { name: "nomad-tls" },
    },
  });
  const environment = { nomad: { NOMAD_TOKEN: "controller-env-token", NOMAD_REGION: "env-region" } };
  const backend = (await backendFactory(client, "/tmp/unused", environment)("ns/p", "ns", spec)) as NomadBackend;
  try {
    const { connection } = backend.client;
    assert.equal(connection.token, "acl-from-secret");
    assert.equal(connection.namespace, "rl");
    assert.equal(connection.region, "env-region", "what neither the spec nor a Secret sets comes from the environment");
    assert.deepEqual([connection.tls?.ca, connection.tls?.cert, connection.tls?.key], [pem("CA"), pem("CERT"), pem("KEY")]);
  } finally {
    await backend.close();
  }
});

test("a pool naming a Secret that does not exist fails with the Secret's name", async () => {
  const { client } = recordingClient();
  const spec = poolSpec({ backend: "modal", modal: { credentialsSecretRef: { name: "modal-creds" } } });
  await assert.rejects(backendFactory(client, "/tmp/unused")("ns/p", "ns", spec), /Secret ns\/modal-creds not found/);
});
