import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import { getEnvironment } from "../../../src/envs/index.ts";
import { startEmbeddedPool } from "../../../src/local/pool.ts";
import { resolveDataset } from "../../../src/envs/resolve.ts";
import { prepareMiniDataset } from "../../../src/envs/swe-smith-oracle/mini.ts";
import { runGroup } from "../../../src/rollout/group.ts";
import { runJob } from "../../../src/local/job.ts";
import { createModelClient } from "../../../src/rollout/model-client.ts";
import { INSPECT_COMMAND } from "../../../src/model-server/policy.ts";
import { startModelServer } from "../../../src/model-server/server.ts";
import type { ScoredDataGroup } from "../../../src/rollout/scored.ts";
import type { LeasedSlot, SlotProvider } from "../../../src/rollout/types.ts";

const run = promisify(execFile);
let dir: string;
/** Where the bundled dataset is generated (the CLI would take it from HERMES_MINI_DATASET_DIR). */
const bundledDir = () => join(dir, "mini");

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hermes-run-test-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function jobYaml(policy: "oracle" | "noop", extra = ""): string {
  return `apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: {name: mini-${policy}}
spec:
  poolRef: {name: local}
  environment: {name: swe-smith-oracle}
  dataset: {bundled: swe-smith-mini}
  model: {builtin: {policy: ${policy}}}
  groupSize: 1
  limits: {maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120}
${extra}`;
}

async function runPolicy(policy: "oracle" | "noop") {
  const jobPath = join(dir, `${policy}.yaml`);
  await writeFile(jobPath, jobYaml(policy));
  const outDir = join(dir, `out-${policy}`);
  const summary = await runJob({ jobPath, outDir, concurrency: 4, environment: { datasets: { bundledDir: bundledDir() } } });
  const groups = (await readFile(join(outDir, "scored.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as ScoredDataGroup);
  return { summary, groups, outDir };
}

test("oracle policy: every item of the mini-dataset scores 1.0, with trainer-ready tokens", async () => {
  const { summary, groups, outDir } = await runPolicy("oracle");
  assert.ok(summary.items >= 6);
  assert.equal(groups.length, summary.items);
  assert.ok(
    groups.every((g) => g.scores.length === 1 && g.scores[0] === 1),
    JSON.stringify(groups.map((g) => g.scores)),
  );
  assert.equal(summary.passRate, 1);
  assert.equal(summary.succeeded, true);
  for (const g of groups) {
    assert.equal(g.tokens[0]?.length, g.masks[0]?.length);
    assert.equal(g.inference_logprobs?.[0]?.length, g.tokens[0]?.length);
    assert.ok(g.metadata.trajectories[0]!.tool_calls >= 2);
  }
  const written = JSON.parse(await readFile(join(outDir, "summary.json"), "utf8"));
  assert.equal(written.groups, summary.items);
});

test("noop policy: every item scores 0.0", async () => {
  const { summary, groups } = await runPolicy("noop");
  assert.equal(groups.length, summary.items);
  assert.ok(groups.every((g) => g.scores[0] === 0));
  assert.ok(
    groups.every((g) => g.metadata.trajectories[0]!.verification.skipped === "no tool calls"),
    "doing nothing is not even verified",
  );
  assert.equal(summary.meanScore, 0);
  assert.equal(summary.failed, 0);
});

test("an unreachable package index: retried as infrastructure, then the item fails without a 0.0 score", async () => {
  const jobPath = join(dir, "no-index.yaml");
  const install = "python3 -m pip install -q --break-system-packages --index-url http://127.0.0.1:9/simple --retries 0 --timeout 1 somepkg";
  const job = jobYaml("oracle", "  backoffLimit: 1\n")
    .replace("environment: {name: swe-smith-oracle}", `environment: {name: swe-smith-oracle, config: {installCommand: "${install}"}}`)
    .replace("dataset: {bundled: swe-smith-mini}", "dataset: {bundled: swe-smith-mini, maxItems: 1}");
  await writeFile(jobPath, job);
  const outDir = join(dir, "out-no-index");
  const summary = await runJob({ jobPath, outDir, concurrency: 2, environment: { datasets: { bundledDir: bundledDir() } } });
  assert.equal(await readFile(join(outDir, "scored.jsonl"), "utf8"), "", "nothing scored: no 0.0 charged to the model");
  assert.deepEqual([summary.items, summary.groups, summary.failed, summary.trajectories], [1, 0, 1, 0]);
  assert.ok(summary.retries >= 1, `retried on another slot first: ${JSON.stringify(summary)}`);
  assert.match(summary.failures[0]?.error ?? "", /install of .* failed: exit 1: .*No matching distribution found for somepkg/s);
  assert.equal(summary.succeeded, false);
});

test("hermes-rollouts run: rows no test profile can run are counted as filtered, not run and not dropped silently", async () => {
  const mini = await prepareMiniDataset(bundledDir());
  const all = (await readFile(mini.jsonlPath, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  // Two repositories: one from the job's base, the other from its mirror.
  const first = all[0];
  const second = all.find((row) => row.repo !== first!.repo);
  const refused = (row: Record<string, unknown>, id: string) => ({ ...row, instance_id: id, FAIL_TO_PASS: ["test/a.test.js > works"] });
  const rows = [first!, refused(first!, "refused-js-1"), second!, refused(second!, "refused-js-2")];
  await writeFile(join(dir, "mixed.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n"));
  // The job's own local sources (the slots cannot see this machine's paths): a base for one repository, a mirror for
  // the other (the base has none of it), both served to the slots over git HTTP as the bundled dataset's are.
  const mirrors = join(dir, "mirrors");
  await run("git", ["clone", "-q", "--bare", join(bundledDir(), `${second!.repo}.git`), join(mirrors, "second.git")]);
  const base = join(dir, "base");
  await run("git", ["clone", "-q", "--bare", join(bundledDir(), `${first!.repo}.git`), join(base, `${first!.repo}.git`)]);
  const jobPath = join(dir, "mixed.yaml");
  const config = `{repoBaseURL: "file://${base}/", repoMirrors: {"${second!.repo}": "file://${mirrors}/second.git"}, installCommand: ""}`;
  await writeFile(
    jobPath,
    jobYaml("oracle")
      .replace("environment: {name: swe-smith-oracle}", `environment: {name: swe-smith-oracle, config: ${config}}`)
      .replace("dataset: {bundled: swe-smith-mini}", "dataset: {jsonl: {path: mixed.jsonl}}"),
  );
  const outDir = join(dir, "out-mixed");
  const { stdout } = await run(process.execPath, ["bin/hermes-rollouts.js", "run", jobPath, "--out", outDir, "--concurrency", "2"]);
  const summary = JSON.parse(await readFile(join(outDir, "summary.json"), "utf8"));
  assert.deepEqual([summary.items, summary.filtered, summary.groups, summary.failed], [2, 2, 2, 0], JSON.stringify(summary));
  const scored = (await readFile(join(outDir, "scored.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as ScoredDataGroup);
  assert.deepEqual(scored.map((g) => g.metadata.item_id).sort(), [first!.instance_id, second!.instance_id].sort());
  assert.deepEqual(
    scored.map((g) => g.scores[0]),
    [1, 1],
  );
  assert.match(stdout.trim().split("\n").at(-1)!, /2\/2 items scored, 0 failed, 2 rows filtered/);
  assert.match(stdout, /^\[\d\/\d \(2 filtered\)\] /m, "the progress lines say rows were left out");
});

test("the CLI names the invalid field and exits non-zero", async () => {
  const jobPath = join(dir, "bad.yaml");
  await writeFile(jobPath, jobYaml("oracle").replace("groupSize: 1", "groupSize: 0"));
  const result = await run(process.execPath, ["bin/hermes-rollouts.js", "run", jobPath, "--out", join(dir, "bad")]).then(
    () => assert.fail("expected a non-zero exit"),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(result.code, 1);
  assert.match(result.stderr, /spec\.groupSize/);
});

test("hermes-rollouts run refuses a configMap tokenizer, naming the field and pointing to path", async () => {
  const jobPath = join(dir, "configmap-tokenizer.yaml");
  const model = "model: {builtin: {policy: oracle}, server: vllm, tokenizer: {configMap: {name: tiny-tokenizer}}}";
  await writeFile(jobPath, jobYaml("oracle").replace("model: {builtin: {policy: oracle}}", model));
  await assert.rejects(
    runJob({ jobPath, outDir: join(dir, "out-configmap"), environment: { datasets: { bundledDir: bundledDir() } } }),
    (error: Error & { code?: string }) =>
      error.code === "HR_MANIFEST_INVALID" &&
      error.message.startsWith(`${jobPath}: spec.model.tokenizer.configMap: ConfigMap tiny-tokenizer is mounted into runner pods`) &&
      error.message.endsWith("use spec.model.tokenizer.path"),
  );
});

test("a sandbox that dies mid-trajectory: retried on another slot, scored once", async () => {
  const pool = validateSandboxPoolSpec({ backend: "local", minSandboxes: 1, maxSandboxes: 2, slotsPerSandbox: 2 });
  assert.ok(pool.ok);
  const embedded = await startEmbeddedPool("retry-test", pool.value);
  const dataset = await resolveDataset({ bundled: "swe-smith-mini", maxItems: 1 }, join(dir, "x.yaml"), { bundledDir: bundledDir() });
  const env = getEnvironment("swe-smith-oracle", dataset.environmentConfig);
  const rows: unknown[] = [];
  for await (const row of dataset.rows) rows.push(row);
  const item = env.parseItem(rows[0]);
  const server = await startModelServer({
    policy: "oracle",
    tasks: [{ id: env.itemId(item), prompt: env.prompt(item).user, commands: env.oracleCommands(item) ?? [] }],
  });
  const killed: string[] = [];
  // The first trajectory's sandbox is terminated right when the agent's first terminal call arrives.
  const faulty: SlotProvider = {
    async acquire(options) {
      const slot = await embedded.slots.acquire(options);
      if (killed.length > 0) return slot;
      const exec: LeasedSlot["exec"] = async (request) => {
        if (request.command === INSPECT_COMMAND && killed.length === 0) {
          const info = (await embedded.backend.list("retry-test")).find((s) => s.name === slot.sandbox);
          assert.ok(info);
          killed.push(info.name);
          await embedded.backend.terminate(info);
        }
        return slot.exec(request);
      };
      return { ...slot, sandbox: slot.sandbox, slot: slot.slot, exec, release: (o) => slot.release(o) };
    },
  };
  try {
    const model = createModelClient({
      baseURL: server.baseURL,
      server: "vllm",
      model: "hermes",
      toolCallFormat: "auto",
      temperature: 1,
      topP: 1,
      maxTokens: 512,
      logprobs: true,
    });
    const group = await runGroup(item, 0, {
      env,
      slots: faulty,
      model,
      format: "auto",
      generation: { temperature: 1, top_p: 1, max_tokens: 512 },
      limits: { maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120, maxTokenLength: 32768, maxToolOutputBytes: 50000 },
      groupSize: 1,
      backoffLimit: 2,
    });
    assert.equal(killed.length, 1);
    assert.deepEqual(group.scores, [1]);
    assert.equal(group.metadata.retries, 1);
    assert.equal(group.metadata.trajectories[0]?.attempt, 2);
    assert.notEqual(group.metadata.trajectories[0]?.sandbox, killed[0]);
  } finally {
    await server.close();
    await dataset.close();
    await embedded.close();
  }
});
