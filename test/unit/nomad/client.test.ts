import { test } from "node:test";
import assert from "node:assert/strict";
import { NomadClient, type FetchInit, type FetchLike } from "../../../src/backends/nomad/client.ts";
import { resolveConnection } from "../../../src/backends/nomad/config.ts";
import { isJobExistsConflict, kindForNomadError } from "../../../src/backends/nomad/errors.ts";
import { isSandboxError } from "../../../src/base/errors.ts";

interface Recorded {
  url: URL;
  init: FetchInit;
}

/** A fetch that records requests and answers from a queue of {status, body, index}. */
function recordingFetch(answers: { status?: number; body: unknown; index?: number }[]): { fetch: FetchLike; calls: Recorded[] } {
  const calls: Recorded[] = [];
  const fetch: FetchLike = async (url, init) => {
    calls.push({ url: new URL(url), init });
    const answer = answers.shift() ?? { body: {} };
    const text =
      typeof answer.body === "string" && answer.status !== undefined && answer.status >= 400 ? answer.body : JSON.stringify(answer.body);
    return {
      status: answer.status ?? 200,
      headers: { get: (name: string) => (name.toLowerCase() === "x-nomad-index" ? String(answer.index ?? 7) : null) },
      text: async () => text,
    };
  };
  return { fetch, calls };
}

test("environment supplies address, token, namespace and region; explicit options win", () => {
  const env = { NOMAD_ADDR: "http://nomad.example:4646/", NOMAD_TOKEN: "env-token", NOMAD_NAMESPACE: "sbx", NOMAD_REGION: "eu" };
  assert.deepEqual(resolveConnection({}, env), {
    address: "http://nomad.example:4646",
    token: "env-token",
    namespace: "sbx",
    region: "eu",
  });
  const explicit = resolveConnection({ address: "http://other:1", token: "opt", namespace: "ns2" }, env);
  assert.equal(explicit.address, "http://other:1");
  assert.equal(explicit.token, "opt");
  assert.equal(explicit.namespace, "ns2");
  assert.deepEqual(resolveConnection({}, {}), { address: "http://127.0.0.1:4646", namespace: "default" });
});

test("TLS settings come from NOMAD_CACERT and friends; PEM text is used as is, paths are read", () => {
  const read: string[] = [];
  const tls = resolveConnection(
    {},
    {
      NOMAD_ADDR: "https://nomad:4646",
      NOMAD_CACERT: "/etc/nomad/ca.pem",
      NOMAD_CLIENT_CERT: "-----BEGIN CERTIFICATE-----\nX",
      NOMAD_CLIENT_KEY: "/etc/nomad/key.pem",
      NOMAD_SKIP_VERIFY: "true",
      NOMAD_TLS_SERVER_NAME: "server.global.nomad",
    },
    (path) => (read.push(path), `pem:${path}`),
  ).tls;
  assert.deepEqual(tls, {
    rejectUnauthorized: false,
    ca: "pem:/etc/nomad/ca.pem",
    cert: "-----BEGIN CERTIFICATE-----\nX",
    key: "pem:/etc/nomad/key.pem",
    servername: "server.global.nomad",
  });
  assert.deepEqual(read, ["/etc/nomad/ca.pem", "/etc/nomad/key.pem"]);
  assert.throws(
    () => resolveConnection({ clientCert: "-----BEGIN x" }, {}),
    (e: unknown) => isSandboxError(e, "configuration"),
  );
  assert.throws(
    () => resolveConnection({ address: "nomad:4646" }, {}),
    (e: unknown) => isSandboxError(e, "configuration"),
  );
});

test("requests carry the token header, namespace and region as query parameters, and blocking index/wait", async () => {
  const { fetch, calls } = recordingFetch([{ body: [], index: 42 }, { body: { EvalID: "e", JobModifyIndex: 9 } }]);
  const client = new NomadClient({ address: "http://n:4646", token: "secret", namespace: "sbx", region: "eu", fetch, env: {} });
  const listed = await client.listAllocations({ filter: 'JobID matches "^hr-"' }, { index: 41, waitMs: 1500 });
  assert.equal(listed.index, 42);
  const get = calls[0]!;
  assert.equal(get.url.pathname, "/v1/allocations");
  assert.equal(get.init.method, "GET");
  assert.equal(get.init.headers["x-nomad-token"], "secret");
  assert.deepEqual(Object.fromEntries(get.url.searchParams), {
    filter: 'JobID matches "^hr-"',
    resources: "true",
    task_states: "true",
    namespace: "sbx",
    region: "eu",
    index: "41",
    wait: "1500ms",
  });
  await client.registerJob({ ID: "j", Name: "j", Type: "service", Datacenters: ["*"], Meta: {}, TaskGroups: [] }, { enforceIndex: 0 });
  const post = calls[1]!;
  assert.equal(post.url.pathname, "/v1/jobs");
  assert.deepEqual(JSON.parse(post.init.body ?? ""), {
    Job: { ID: "j", Name: "j", Type: "service", Datacenters: ["*"], Meta: {}, TaskGroups: [], Namespace: "sbx" },
    EnforceIndex: true,
    JobModifyIndex: 0,
  });
});

test("an index of 0 never blocks; deregister sends purge", async () => {
  const { fetch, calls } = recordingFetch([{ body: [] }, { body: { EvalID: "", JobModifyIndex: 3 } }]);
  const client = new NomadClient({ address: "http://n:4646", fetch, env: {} });
  await client.listJobs({ prefix: "hr-" }, { index: 0 });
  assert.equal(calls[0]!.url.searchParams.get("index"), null);
  assert.equal(calls[0]!.url.searchParams.get("meta"), "true");
  assert.equal(calls[0]!.init.headers["x-nomad-token"], undefined);
  await client.deregisterJob("hr-a b", { purge: true });
  assert.equal(calls[1]!.url.pathname, "/v1/job/hr-a%20b");
  assert.equal(calls[1]!.init.method, "DELETE");
  assert.equal(calls[1]!.url.searchParams.get("purge"), "true");
});

test("Nomad's text errors become SandboxErrors by status and body", async () => {
  const { fetch } = recordingFetch([
    { status: 404, body: "job not found" },
    { status: 403, body: "Permission denied" },
    { status: 500, body: "Enforcing job modify index 0: job already exists" },
  ]);
  const client = new NomadClient({ address: "http://n:4646", fetch, env: {} });
  assert.equal(await client.findJob("missing"), undefined);
  await assert.rejects(client.leader(), (e: unknown) => isSandboxError(e, "configuration") && /403 Permission denied/.test(e.message));
  await assert.rejects(
    client.registerJob({ ID: "j", Name: "j", Type: "service", Datacenters: [], Meta: {}, TaskGroups: [] }),
    (e: unknown) => isJobExistsConflict(e),
  );
  assert.equal(kindForNomadError(400, "job scaling blocked due to active deployment"), "transient");
  assert.equal(kindForNomadError(400, "invalid job"), "configuration");
  assert.equal(kindForNomadError(500, "No cluster leader"), "transient");
  assert.equal(kindForNomadError(500, 'nonexistent namespace "x"'), "configuration");
  assert.equal(kindForNomadError(429, "too many"), "capacity");
  assert.equal(kindForNomadError(404, "alloc not found"), "gone");
});

test("transport failures: refused is transient, a bad certificate is configuration, bad shapes are refused", async () => {
  const fail =
    (code: string): FetchLike =>
    async () => {
      throw new TypeError("fetch failed", { cause: Object.assign(new Error(code), { code }) });
    };
  await assert.rejects(new NomadClient({ fetch: fail("ECONNREFUSED"), env: {} }).leader(), (e: unknown) => isSandboxError(e, "transient"));
  await assert.rejects(new NomadClient({ fetch: fail("DEPTH_ZERO_SELF_SIGNED_CERT"), env: {} }).leader(), (e: unknown) =>
    isSandboxError(e, "configuration"),
  );
  const { fetch } = recordingFetch([{ body: [{ ID: 1 }] }]);
  await assert.rejects(
    new NomadClient({ fetch, env: {} }).listJobs(),
    (e: unknown) => isSandboxError(e, "configuration") && /unexpected answer shape/.test(e.message),
  );
});
