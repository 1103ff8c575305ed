import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { validateRolloutJobSpec, type RolloutJobSpec } from "../../../src/api/index.ts";
import { JobDatasets } from "../../../src/operator/rolloutjob/dataset.ts";

function jobSpec(dataset: object, environment: object = { name: "shell-task" }): RolloutJobSpec {
  const result = validateRolloutJobSpec({
    poolRef: { name: "p" },
    environment,
    dataset,
    model: { builtin: { policy: "noop" } },
  });
  if (!result.ok) throw new Error(result.errors.join("; "));
  return result.value;
}

const rows = Array.from({ length: 10 }, (_, i) => ({ id: `t${i}`, goal: "g", check: "true" }));
const configMaps = { "ns/items": { "items.jsonl": rows.map((r) => JSON.stringify(r)).join("\n") } } as Record<
  string,
  Record<string, string>
>;
const client = { readConfigMap: async (namespace: string, name: string) => configMaps[`${namespace}/${name}`] };

test("ConfigMap rows come through the envs loader with the job's seeded order and maxItems", async () => {
  const datasets = new JobDatasets(client, "/tmp");
  const spec = jobSpec({ configMap: { name: "items" }, shuffleSeed: 3, maxItems: 4 });
  const first = await Array.fromAsync((await datasets.load("ns", spec)).rows);
  const again = await Array.fromAsync((await datasets.load("ns", spec)).rows);
  assert.equal(first.length, 4);
  assert.deepEqual(first, again, "same seed, same order");
  assert.notDeepEqual(first, rows.slice(0, 4), "the seed shuffles");
  await assert.rejects(datasets.load("other", spec), /ConfigMap other\/items not found/);
});

test("the bundled dataset's repositories are served by one shared server, reachable until the controller closes", async () => {
  const datasets = new JobDatasets(client, "/tmp");
  const spec = jobSpec({ bundled: "swe-smith-mini", maxItems: 2 });
  const a = await datasets.load("ns", spec);
  const b = await datasets.load("ns", spec);
  const base = a.environmentConfig.repoBaseURL as string;
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.equal(b.environmentConfig.repoBaseURL, base, "one server for every job of that dataset");
  const advert = await fetch(`${base}hermes-mini/statkit.git/info/refs?service=git-upload-pack`);
  assert.equal(advert.status, 200);
  await datasets.close();
  await assert.rejects(fetch(`${base}hermes-mini/statkit.git/info/refs?service=git-upload-pack`), "closed with the controller");
});

test("a job's own file:// repository base is served too, whatever its rows come from (here a ConfigMap)", async () => {
  const datasets = new JobDatasets(client, "/tmp");
  const root = await mkdtemp(join(tmpdir(), "hermes-job-repos-"));
  try {
    await promisify(execFile)("git", ["init", "-q", "--bare", join(root, "acme", "calc.git")]);
    const environment = { name: "swe-smith-oracle", config: { repoBaseURL: `file://${root}/`, installCommand: "" } };
    const loaded = await datasets.load("ns", jobSpec({ configMap: { name: "items" } }, environment));
    const base = loaded.environmentConfig.repoBaseURL as string;
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(loaded.environmentConfig.installCommand, "", "the job's other settings go with it");
    assert.equal((await fetch(`${base}acme/calc.git/info/refs?service=git-upload-pack`)).status, 200);
  } finally {
    await datasets.close();
    await rm(root, { recursive: true, force: true });
  }
});
