import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { cruise, type ICruiseOptions, type IViolation } from "dependency-cruiser";
import config, { layers } from "../../../.dependency-cruiser.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");

async function violations(baseDir: string): Promise<string[]> {
  const options: ICruiseOptions = {
    ...config.options,
    ruleSet: { forbidden: config.forbidden },
    validate: true,
    baseDir,
  } as ICruiseOptions;
  const result = await cruise(["src"], options);
  if (typeof result.output === "string") throw new Error("expected a structured cruise result");
  return result.output.summary.violations.map(
    (v: IViolation) => `${v.rule.name}: ${[v.from, ...(v.cycle?.map((c) => c.name) ?? [v.to])].join(" → ")}`,
  );
}

/** A scratch tree shaped like src/, for checking what the rules reject. */
async function tree(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "layers-"));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

test("src/ keeps the one dependency direction", async () => {
  assert.deepEqual(await violations(root), []);
});

test("an upward import fails and the violation names it", async (t) => {
  const dir = await tree({
    "src/api/schema.ts": 'import { start } from "../operator/main.ts";\nexport const s = start;\n',
    "src/operator/main.ts": "export const start = 1;\n",
  });
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual(await violations(dir), ["layer-api: src/api/schema.ts → src/operator/main.ts"]);
});

test("the processes do not import one another, and test beds are only for the CLI", async (t) => {
  const dir = await tree({
    "src/runner/loop.ts": 'import { x } from "../local/job.ts";\nexport const y = x;\n',
    "src/local/job.ts": 'import { m } from "../testbeds/mock.ts";\nexport const x = m;\n',
    "src/testbeds/mock.ts": "export const m = 1;\n",
    "src/cli/main.ts": 'import { m } from "../testbeds/mock.ts";\nimport { y } from "../runner/loop.ts";\nexport const z = [m, y];\n',
  });
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual((await violations(dir)).sort(), [
    "layer-local: src/local/job.ts → src/testbeds/mock.ts",
    "layer-runner: src/runner/loop.ts → src/local/job.ts",
  ]);
});

test("a downward import passes, a file outside the layers and an import cycle do not", async (t) => {
  const dir = await tree({
    "src/rollout/group.ts": 'import { a } from "../api/a.ts";\nexport const g = a;\n',
    "src/api/a.ts": 'import { b } from "./b.ts";\nexport const a = b;\n',
    "src/api/b.ts": 'import { a } from "./a.ts";\nexport const b = () => a;\n',
    "src/misc/util.ts": 'import { a } from "../api/a.ts";\nexport const u = a;\n',
  });
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual((await violations(dir)).sort(), [
    "no-import-cycles: src/api/a.ts → src/api/b.ts → src/api/a.ts",
    "src-outside-layers: src/misc/util.ts → src/api/a.ts",
  ]);
});

test("every layer lists only layers that exist, and none lists itself", () => {
  for (const [layer, below] of Object.entries(layers)) {
    for (const name of below) assert.ok(name in layers && name !== layer, `${layer} → ${name}`);
  }
});
