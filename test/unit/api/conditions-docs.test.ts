import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { jobConditionReason, jobConditionType, jobEventReason, poolConditionReason, poolConditionType } from "../../../src/api/index.ts";

const guide = readFileSync(new URL("../../../docs/operations.md", import.meta.url), "utf8");

/** The text of a `### heading` section of the operations guide, up to the next heading. */
function section(heading: string): string {
  const start = guide.indexOf(`### ${heading}\n`);
  assert.ok(start >= 0, `docs/operations.md has a "### ${heading}" section`);
  const end = guide.slice(start + 4).search(/\n##/);
  return guide.slice(start, end < 0 ? undefined : start + 4 + end);
}

/** Condition types (first column, `Type=Status`) and reasons (second column, in backticks) of a section's table. */
function table(text: string): { types: Set<string>; reasons: Set<string> } {
  const rows = text.split("\n").filter((line) => line.startsWith("| ") && !line.startsWith("| condition") && !line.startsWith("|---"));
  const cells = rows.map((row) => row.split("|").map((cell) => cell.trim()));
  return {
    types: new Set(cells.flatMap((c) => [...c[1]!.matchAll(/(\w+)=/g)].map((m) => m[1]!))),
    reasons: new Set(cells.flatMap((c) => [...c[2]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!))),
  };
}

const sorted = (values: Iterable<string>) => [...values].sort();

test("every SandboxPool condition type and reason is in the operations guide's table, and nothing else is", () => {
  const { types, reasons } = table(section("SandboxPool"));
  assert.deepEqual(sorted(types), sorted(poolConditionType.options));
  assert.deepEqual(sorted(reasons), sorted(poolConditionReason.options));
});

test("every RolloutJob condition type, reason and Event reason is in the operations guide, and nothing else is", () => {
  const text = section("RolloutJob");
  const { types, reasons } = table(text);
  assert.deepEqual(sorted(types), sorted(jobConditionType.options));
  assert.deepEqual(sorted(reasons), sorted(jobConditionReason.options));
  const events = /^Events: (.*)$/m.exec(text)?.[1] ?? "";
  assert.deepEqual(sorted([...events.matchAll(/`(\w+)`/g)].map((m) => m[1]!)), sorted(jobEventReason.options));
});
