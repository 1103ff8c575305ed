import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
/** Tracked code files; generated ones are gitignored, so never listed. */
const tracked = execFileSync("git", ["ls-files", "*.ts", "*.mjs", "*.mts", "bin/*.js"], { cwd: root, encoding: "utf8" })
  .split("\n")
  .filter(Boolean);
const MAX_LINE = 140;
const MAX_SOURCE_LINES = 400;

test("every tracked code file is formatted as prettier would write it", async () => {
  const config = await prettier.resolveConfig(join(root, "src/cli/main.ts"));
  assert.equal(config?.printWidth, MAX_LINE, "the prettier config sets the line width the style checks use");
  const unformatted: string[] = [];
  for (const file of tracked) {
    const text = readFileSync(join(root, file), "utf8");
    if (!(await prettier.check(text, { ...config, filepath: join(root, file) }))) unformatted.push(file);
  }
  assert.deepEqual(unformatted, [], "run: npx prettier --write <file>");
});

test(`no line over ${MAX_LINE} characters, no source file over ${MAX_SOURCE_LINES} lines`, () => {
  const long: string[] = [];
  const big: string[] = [];
  for (const file of tracked) {
    const lines = readFileSync(join(root, file), "utf8").split("\n");
    lines.forEach((line, index) => line.length > MAX_LINE && long.push(`${file}:${index + 1} (${line.length})`));
    if (file.startsWith("src/") && lines.length > MAX_SOURCE_LINES) big.push(`${file} (${lines.length} lines)`);
  }
  assert.deepEqual(long, []);
  assert.deepEqual(big, []);
});
