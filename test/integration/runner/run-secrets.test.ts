/**
 * `hermes-rollouts run` with credentials planted everywhere a user would put them (the model endpoint's key,
 * cloud and sandbox tokens in the environment) and every log line on: none of them may show up in the output.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { startModelServer } from "../../../src/model-server/server.ts";

const CLI = new URL("../../../bin/hermes-rollouts.js", import.meta.url).pathname;
const PLANTED = {
  OPENAI_API_KEY: "sk-planted-openai-0001",
  HERMES_MODEL_API_KEY: "planted-model-key-0002",
  HERMES_SANDBOX_TOKEN: "planted-sandbox-token-0003",
  MODAL_TOKEN_ID: "ak-planted-modal-id-0004",
  MODAL_TOKEN_SECRET: "as-planted-modal-secret-0005",
  NOMAD_TOKEN: "planted-nomad-token-0006",
  HF_TOKEN: "hf_planted_0007",
};

test("a whole run at LOG_LEVEL=trace logs none of the planted secrets (nor writes them to its results)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hermes-run-secrets-"));
  const model = await startModelServer({ policy: "noop" });
  try {
    const jobPath = join(dir, "job.yaml");
    const outDir = join(dir, "out");
    await writeFile(
      jobPath,
      `apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: {name: secrets}
spec:
  poolRef: {name: local}
  environment: {name: swe-smith-oracle}
  dataset: {bundled: swe-smith-mini, maxItems: 2}
  model: {baseURL: "${model.baseURL}", apiKeySecretRef: {name: model, key: apiKey}}
  groupSize: 1
  limits: {maxTurns: 2, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120}
`,
    );
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, "run", jobPath, "--out", outDir], {
      env: { PATH: process.env.PATH ?? "", HOME: dir, LOG_LEVEL: "trace", HERMES_MINI_DATASET_DIR: join(dir, "mini"), ...PLANTED },
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.match(stdout, /secrets: 2\/2 items scored/);
    assert.ok(model.requests > 0, "the run reached the model endpoint with its key");
    const written = await Promise.all((await readdir(outDir)).map((file) => readFile(join(outDir, file), "utf8")));
    const output = [stdout, stderr, ...written].join("\n");
    assert.match(output, /"msg":"slot isolation probed"/, "the JSON logs are in the output");
    for (const [name, value] of Object.entries(PLANTED)) assert.ok(!output.includes(value), `${name} appears in the run's output`);
  } finally {
    await model.close();
    await rm(dir, { recursive: true, force: true });
  }
});
