/**
 * A job whose rows name two images (image_name), on the local backend and on the mock Modal through the real SDK:
 * each trajectory runs in a sandbox of its own item's image, sees that image's files with its slot at the work dir,
 * and is scored by that image's environment (the `greet` interpreter package of TWO_IMAGES).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runJob } from "../../../src/local/job.ts";
import { startMockModal } from "../../../src/testbeds/mock-modal/server.ts";
import { imageEntryName } from "../../../src/testbeds/mock-modal/images.ts";
import type { ScoredDataGroup } from "../../../src/rollout/scored.ts";
import { buildTestImage, TWO_IMAGES, TWO_IMAGES_WORKDIR, twoImageSpec } from "../../support/oci-images.ts";

const GROUP_SIZE = 2;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hermes-images-job-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Per image: a row that checks its own image's greeting, file and work dir (1.0), and a row that expects the other
 * image's greeting (0.0: `greet` is the trajectory's own image's).
 */
function rows(images: Record<keyof typeof TWO_IMAGES, string>): object[] {
  const solution = `greet > answer && cat /etc/which > which && pwd > where`;
  const check = (greeting: string, which: string) =>
    `test "$(cat answer)" = "${greeting}" && test "$(cat which)" = ${which} && test "$(cat where)" = ${TWO_IMAGES_WORKDIR}`;
  return (["a", "b"] as const).flatMap((name) => {
    const other = name === "a" ? "b" : "a";
    return [
      {
        id: `own-${name}`,
        image_name: images[name],
        goal: "greet",
        solution,
        check: check(TWO_IMAGES[name].greeting, TWO_IMAGES[name].which),
      },
      {
        id: `other-${name}`,
        image_name: images[name],
        goal: "greet",
        solution,
        check: check(TWO_IMAGES[other].greeting, TWO_IMAGES[name].which),
      },
    ];
  });
}

/** Writes the job and its pool (spec lines after `kind`), runs it, and returns its scored groups; nothing may fail. */
async function runManifests(name: string, job: string, pool: string): Promise<ScoredDataGroup[]> {
  const manifest = (kind: string, spec: string) =>
    `apiVersion: hermes-rollouts.dev/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec:\n${spec}\n`;
  const jobPath = join(dir, `${name}-job.yaml`);
  const poolPath = join(dir, `${name}-pool.yaml`);
  await writeFile(jobPath, manifest("RolloutJob", `  poolRef: {name: ${name}}\n${job}`));
  await writeFile(poolPath, manifest("SandboxPool", pool));
  const outDir = join(dir, `out-${name}`);
  const environment = { datasets: { bundledDir: join(dir, "mini") } };
  const summary = await runJob({ jobPath, poolPath, outDir, concurrency: 4, environment });
  assert.equal(summary.failed, 0, JSON.stringify(summary.failures));
  return (await readFile(join(outDir, "scored.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as ScoredDataGroup);
}

async function runImagesJob(name: string, images: Record<keyof typeof TWO_IMAGES, string>, poolSpec: string): Promise<ScoredDataGroup[]> {
  const datasetPath = join(dir, `${name}.jsonl`);
  await writeFile(
    datasetPath,
    rows(images)
      .map((row) => JSON.stringify(row))
      .join("\n"),
  );
  const job = [
    "  environment: {name: shell-task}",
    `  dataset: {jsonl: {path: "${datasetPath}"}}`,
    "  model: {builtin: {policy: oracle}}",
    `  groupSize: ${GROUP_SIZE}`,
    "  limits: {maxTurns: 4, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120}",
  ];
  return runManifests(name, job.join("\n"), `  minSandboxes: 0\n  maxSandboxes: 2\n  slotsPerSandbox: ${GROUP_SIZE}\n${poolSpec}`);
}

function assertScoredByOwnImage(groups: ScoredDataGroup[]): void {
  const scores = Object.fromEntries(groups.map((group) => [String(group.metadata.item_id), group.scores]));
  const own = Array(GROUP_SIZE).fill(1);
  const other = Array(GROUP_SIZE).fill(0);
  assert.deepEqual(scores, { "own-a": own, "other-a": other, "own-b": own, "other-b": other });
  // A group of one image runs on one sandbox, and the two images never share one.
  const sandboxOf = (id: string) =>
    new Set(groups.find((group) => group.metadata.item_id === id)!.metadata.trajectories.map((t) => t.sandbox));
  for (const id of ["own-a", "own-b"]) assert.equal(sandboxOf(id).size, 1, `${id}: ${[...sandboxOf(id)].join(", ")}`);
  assert.notDeepEqual(sandboxOf("own-a"), sandboxOf("own-b"));
}

test("local backend: each trajectory runs in its row's OCI image and scores by it", async () => {
  const layout = join(dir, "layout");
  const images = { a: await buildTestImage(layout, "a", twoImageSpec("a")), b: await buildTestImage(layout, "b", twoImageSpec("b")) };
  // The pool's own image is neither: every sandbox is of an item's image.
  assertScoredByOwnImage(await runImagesJob("images-local", images, `  backend: local\n  local: {rootDir: "${join(dir, "local")}"}`));
});

test("mock Modal through the real SDK: each trajectory runs in a sandbox of its row's image and scores by it", async () => {
  const imagesDir = join(dir, "modal-images");
  const images = { a: "localhost/job-image-a:1", b: "localhost/job-image-b:1" };
  for (const name of ["a", "b"] as const) await buildTestImage(join(imagesDir, imageEntryName(images[name])), name, twoImageSpec(name));
  const mock = await startMockModal({ imagesDir, dataDir: join(dir, "mock") });
  process.env.MODAL_TOKEN_ID ??= "ak-images-test";
  process.env.MODAL_TOKEN_SECRET ??= "as-images-test";
  try {
    const pool = `  backend: modal\n  slotWorkdir: ${TWO_IMAGES_WORKDIR}\n  modal: {serverURL: "${mock.url}", appName: hermes-images-test}`;
    assertScoredByOwnImage(await runImagesJob("images-modal", images, pool));
  } finally {
    await mock.close();
  }
});

test("swe-smith-oracle with the slots' workspace at /testbed (spec.slotWorkdir): checkout, install and tests work there", async () => {
  const job = [
    "  environment: {name: swe-smith-oracle}",
    "  dataset: {bundled: swe-smith-mini, maxItems: 1}",
    "  model: {builtin: {policy: oracle}}",
    "  groupSize: 2",
    "  limits: {maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120}",
  ];
  const pool = `  backend: local\n  minSandboxes: 1\n  maxSandboxes: 1\n  slotsPerSandbox: 2\n  slotWorkdir: ${TWO_IMAGES_WORKDIR}`;
  const groups = await runManifests("testbed", job.join("\n"), pool);
  // Both slots share the install made under /testbed (editable, so it points into the worktree the slots see there).
  assert.deepEqual(
    groups.map((group) => group.scores),
    [[1, 1]],
  );
});
