import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import type { NomadBackend } from "../../../src/backends/nomad/backend.ts";
import { permute } from "../../../src/envs/datasets/index.ts";
import { createBackend } from "../../../src/local/pool.ts";
import { anchorDatasetSpec, resolveDataset } from "../../../src/envs/resolve.ts";

const savedServerUrl = process.env.MODAL_SERVER_URL;
afterEach(() => {
  if (savedServerUrl === undefined) delete process.env.MODAL_SERVER_URL;
  else process.env.MODAL_SERVER_URL = savedServerUrl;
});

async function collect(rows: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const row of rows) out.push(row);
  return out;
}

const inline = Array.from({ length: 10 }, (_, i) => ({ id: i }));

test("inline rows: shuffleSeed gives the seeded permutation, then maxItems cuts it", async () => {
  const first = await resolveDataset({ inline, shuffleSeed: 7, maxItems: 4 }, "/jobs/job.yaml");
  const again = await resolveDataset({ inline, shuffleSeed: 7, maxItems: 4 }, "/jobs/job.yaml");
  const rows = await collect(first.rows);
  assert.deepEqual(rows, permute(inline, 7).slice(0, 4));
  assert.deepEqual(await collect(again.rows), rows);
  assert.notDeepEqual(rows, inline.slice(0, 4));
  assert.deepEqual(first.environmentConfig, {});
});

test("without a seed the rows keep their order; maxItems 0 yields nothing", async () => {
  assert.deepEqual(await collect((await resolveDataset({ inline }, "/j.yaml")).rows), inline);
  assert.deepEqual(await collect((await resolveDataset({ inline, maxItems: 0 }, "/j.yaml")).rows), []);
});

test("the job's environment config goes with the dataset's; local repository sources are handed to the server, others kept", async () => {
  const served: string[] = [];
  const serveRepos = async (root: string) => {
    served.push(root);
    return `http://10.0.0.9:${8000 + served.length}/`;
  };
  const environmentConfig = {
    repoBaseURL: "file:///srv/repos/",
    repoMirrors: { "acme/calc": "file:///srv/mirrors/calc%20fork.git", "acme/web": "https://mirror.example/web.git" },
    installCommand: "",
  };
  const resolved = await resolveDataset({ inline }, "/j.yaml", { serveRepos, environmentConfig });
  assert.deepEqual(resolved.environmentConfig, {
    repoBaseURL: "http://10.0.0.9:8001/",
    repoMirrors: { "acme/calc": "http://10.0.0.9:8002/calc%20fork.git", "acme/web": "https://mirror.example/web.git" },
    installCommand: "",
  });
  assert.deepEqual(served, ["/srv/repos/", "/srv/mirrors"]);
});

test("a configMap dataset outside a cluster is refused with a clear error", async () => {
  await assert.rejects(resolveDataset({ configMap: { name: "items", key: "items.jsonl" } }, "/j.yaml"), /configMap.*cluster/);
});

test("a relative JSONL path resolves against the job file's directory; absolute paths and URLs stay", () => {
  assert.deepEqual(anchorDatasetSpec({ jsonl: { path: "data/items.jsonl" } }, "/jobs/a/job.yaml"), {
    jsonl: { path: "/jobs/a/data/items.jsonl" },
  });
  assert.deepEqual(anchorDatasetSpec({ jsonl: { path: "/abs.jsonl" } }, "/jobs/job.yaml"), { jsonl: { path: "/abs.jsonl" } });
  const byUrl = { jsonl: { url: "http://127.0.0.1/items.jsonl" } };
  assert.equal(anchorDatasetSpec(byUrl, "/jobs/job.yaml"), byUrl);
});

function poolSpec(spec: Record<string, unknown>) {
  const result = validateSandboxPoolSpec(spec);
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
}

test("modal pool: a modal backend; spec.modal.serverURL is not left in the process environment", async () => {
  delete process.env.MODAL_SERVER_URL;
  const { backend, cleanup } = await createBackend(
    poolSpec({ backend: "modal", maxConcurrentCreates: 3, modal: { serverURL: "http://127.0.0.1:1", appName: "my-app" } }),
  );
  try {
    assert.equal(backend.kind, "modal");
    // Which server the client talks to is checked in test/integration/modal/backend.test.ts.
    assert.equal(process.env.MODAL_SERVER_URL, undefined);
  } finally {
    await backend.close();
    await cleanup();
  }
});

test("nomad pool: address, namespace and region from spec.nomad, ACL token from the NOMAD_TOKEN the CLI passed", async () => {
  process.env.NOMAD_TOKEN = "not-passed-so-not-read";
  const { backend, cleanup } = await createBackend(
    poolSpec({ backend: "nomad", nomad: { address: "http://127.0.0.1:4646/", namespace: "rl", region: "eu", driver: "raw_exec" } }),
    { nomad: { NOMAD_TOKEN: "acl-from-env", NOMAD_NAMESPACE: "under-the-spec" } },
  );
  try {
    assert.equal(backend.kind, "nomad");
    const { connection } = (backend as NomadBackend).client;
    assert.equal(connection.address, "http://127.0.0.1:4646");
    assert.equal(connection.namespace, "rl");
    assert.equal(connection.region, "eu");
    assert.equal(connection.token, "acl-from-env");
  } finally {
    delete process.env.NOMAD_TOKEN;
    await backend.close();
    await cleanup();
  }
});
