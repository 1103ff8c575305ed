import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Secret } from "@kubernetes/client-node";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import type { NomadBackend } from "../../../src/backends/nomad/backend.ts";
import { backendFactory, sandboxTokenSecretName } from "../../../src/operator/backends.ts";
import type { PoolIdentity } from "../../../src/operator/sandboxpool/runtimes.ts";
import { apiRefusal, recordingClient } from "./fakes.ts";

const poolSpec = (spec: Record<string, unknown>) => {
  const result = validateSandboxPoolSpec(spec);
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
};

const pool: PoolIdentity = { key: "ns/p", namespace: "ns", name: "p", uid: "uid-p" };
const nomadSpec = () => poolSpec({ backend: "nomad", nomad: { address: "http://127.0.0.1:4646", namespace: "rl" } });

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
  const backend = (await backendFactory(client, "/tmp/unused", environment)(pool, spec)) as NomadBackend;
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
  await assert.rejects(backendFactory(client, "/tmp/unused")(pool, spec), /Secret ns\/modal-creds not found/);
});

test("a nomad pool without a sandbox token gets one in a Secret it owns, and a restarted controller reads the same token", async () => {
  const first = recordingClient();
  const backend = (await backendFactory(first.client, "/tmp/unused")(pool, nomadSpec())) as NomadBackend;
  await backend.close();
  const [created] = first.expect(["createSecret ns/p-sandbox-token"]);
  const secret = created!.body as V1Secret;
  const token = secret.stringData?.token ?? "";
  assert.ok(token.length >= 32, "a long random token");
  assert.equal(backend["options"].sandboxToken, token, "the servers the backend starts require it");
  assert.deepEqual(
    secret.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid]),
    [["SandboxPool", "p", "uid-p"]],
  );

  const restarted = recordingClient({ secrets: { [`ns/${sandboxTokenSecretName("p")}`]: { token } } });
  const again = (await backendFactory(restarted.client, "/tmp/unused")(pool, nomadSpec())) as NomadBackend;
  await again.close();
  restarted.expect([]);
  assert.equal(again["options"].sandboxToken, token, "sandboxes started before the restart stay reachable");
});

test("a sandbox token Secret that cannot be created fails the backend instead of starting open servers", async () => {
  const { client, refuse } = recordingClient();
  refuse.createSecret = apiRefusal(403, "secrets is forbidden");
  await assert.rejects(backendFactory(client, "/tmp/unused")(pool, nomadSpec()), /Secret ns\/p-sandbox-token .*cannot be created/);
});
