/**
 * `hermes-rollouts run --pool`: the same small oracle job on the local backend, on a Modal pool served by the mock
 * Modal (the real SDK over gRPC) and on a Nomad pool served by the fake Nomad (raw_exec sandbox servers). Scores
 * must match, and the run must leave no sandbox behind.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { startMockModal } from "../../../src/testbeds/mock-modal/server.ts";
import { startFakeNomad } from "../../../src/testbeds/fake-nomad/server.ts";
import { runJob, type RunSummary } from "../../../src/local/job.ts";
import type { EmbeddedPoolEnvironment } from "../../../src/local/pool.ts";
import type { ScoredDataGroup } from "../../../src/rollout/scored.ts";

const ITEMS = 2;
const GROUP_SIZE = 2;
let dir: string;
let jobPath: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hermes-pools-test-"));
  jobPath = join(dir, "job.yaml");
  await writeFile(
    jobPath,
    `apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: {name: pools-oracle}
spec:
  poolRef: {name: pool}
  environment: {name: swe-smith-oracle}
  dataset: {bundled: swe-smith-mini, maxItems: ${ITEMS}}
  model: {builtin: {policy: oracle}}
  groupSize: ${GROUP_SIZE}
  limits: {maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120}
`,
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface PoolSettings {
  backend: "modal" | "nomad";
  /** The backend's block of the spec, as one YAML line. */
  block: string;
}

function poolYaml(name: string, { backend, block }: PoolSettings): string {
  return `apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: {name: ${name}}
spec:
  backend: ${backend}
  minSandboxes: 1
  maxSandboxes: 1
  slotsPerSandbox: ${GROUP_SIZE}
  ${block}
`;
}

/** Runs the job on the named pool; on the default local pool without `settings` (no --pool). */
async function runOn(
  name: string,
  settings?: PoolSettings,
  pool: EmbeddedPoolEnvironment = {},
): Promise<{ summary: RunSummary; groups: ScoredDataGroup[] }> {
  let poolPath: string | undefined;
  if (settings !== undefined) {
    poolPath = join(dir, `${name}.yaml`);
    await writeFile(poolPath, poolYaml(name, settings));
  }
  const outDir = join(dir, `out-${name}`);
  const environment = { datasets: { bundledDir: join(dir, "mini") }, pool };
  const summary = await runJob({ jobPath, outDir, ...(poolPath ? { poolPath } : {}), environment });
  const groups = (await readFile(join(outDir, "scored.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as ScoredDataGroup);
  return { summary, groups };
}

/** Item id → scores, for comparing runs whose groups finish in any order. */
const scoresById = (groups: ScoredDataGroup[]): Record<string, number[]> =>
  Object.fromEntries(groups.map((group) => [String(group.metadata.item_id), group.scores]));

let localScores: Record<string, number[]>;

test("local backend: every trajectory of the small job scores 1.0", async () => {
  const { summary, groups } = await runOn("local");
  assert.equal(summary.backend, "local");
  assert.equal(groups.length, ITEMS);
  localScores = scoresById(groups);
  assert.deepEqual(
    Object.values(localScores),
    Array.from({ length: ITEMS }, () => Array(GROUP_SIZE).fill(1)),
  );
});

test("--pool on a Modal pool (mock Modal): same scores, no sandbox left running", async () => {
  const mock = await startMockModal();
  process.env.MODAL_TOKEN_ID ??= "ak-pools-test";
  process.env.MODAL_TOKEN_SECRET ??= "as-pools-test";
  try {
    const { summary, groups } = await runOn("pool-modal", {
      backend: "modal",
      block: `modal: {serverURL: "${mock.url}", appName: hermes-pools-test}`,
    });
    assert.equal(summary.backend, "modal");
    assert.equal(summary.succeeded, true, JSON.stringify(summary.failures));
    assert.deepEqual(scoresById(groups), localScores);
    assert.ok(groups.every((group) => group.metadata.trajectories.every((t) => String(t.sandbox).startsWith("pool-modal"))));
    const sandboxes = [...mock.state.sandboxes.values()];
    assert.ok(sandboxes.length >= 1, "the run created no Modal sandbox");
    assert.deepEqual(
      sandboxes.filter((sandbox) => sandbox.running).map((sandbox) => sandbox.id),
      [],
    );
  } finally {
    await mock.close();
  }
});

test("--pool on a Nomad pool (fake Nomad): same scores, no allocation left running", async () => {
  const fake = await startFakeNomad();
  try {
    const { summary, groups } = await runOn("pool-nomad", { backend: "nomad", block: `nomad: {address: "${fake.url}", driver: raw_exec}` });
    assert.equal(summary.backend, "nomad");
    assert.equal(summary.succeeded, true, JSON.stringify(summary.failures));
    assert.deepEqual(scoresById(groups), localScores);
    const allocs = [...fake.state.allocs.values()];
    assert.ok(allocs.length >= 1, "the run placed no Nomad allocation");
    // The run deregistered every job before returning; as in Nomad, each deregister evaluation then stops the
    // allocations (DesiredStatus stop) and their processes exit on the kill signal.
    const stillRunning = () =>
      allocs.filter((alloc) => alloc.DesiredStatus === "run" || alloc.ClientStatus === "running" || alloc.ClientStatus === "pending");
    for (const deadline = Date.now() + 10_000; stillRunning().length > 0 && Date.now() < deadline;) await delay(100);
    assert.deepEqual(
      stillRunning().map((alloc) => alloc.ID),
      [],
    );
    assert.equal(fake.state.variables.size, 0, "no sandbox token left behind in a Nomad Variable");
  } finally {
    await fake.close();
  }
});

test("a pool the run cannot list (Nomad ACL token refused) fails the run at once, naming the pool", async () => {
  const fake = await startFakeNomad({ aclToken: "the-right-token" });
  try {
    const started = Date.now();
    await assert.rejects(
      runOn(
        "pool-nomad-denied",
        { backend: "nomad", block: `nomad: {address: "${fake.url}", driver: raw_exec}` },
        { nomad: { NOMAD_TOKEN: "a-wrong-token" } },
      ),
      /SandboxPool pool-nomad-denied \(backend nomad\) is not reachable/,
    );
    assert.ok(Date.now() - started < 10_000);
    assert.equal(fake.state.jobs.size, 0);
  } finally {
    await fake.close();
  }
});
