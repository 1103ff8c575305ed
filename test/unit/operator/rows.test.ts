import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, truncateSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { SpooledRows } from "../../../src/operator/rolloutjob/rows.ts";

const dir = mkdtempSync(join(tmpdir(), "rows-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function* stream(count: number) {
  for (let i = 0; i < count; i++) yield { id: i, text: `ünïcode ${"x".repeat(i % 7)} ✓`, nested: { list: [i, i + 1] } };
}
const unreadable = () => {
  throw new Error("the source must not be read again");
};

test("rows stream to disk once and are read back by index, multi-byte text included", async () => {
  const path = join(dir, "a", "rows.jsonl");
  const rows = await SpooledRows.open(path, () => ({ rows: stream(2500) }));
  assert.equal(rows.count, 2500);
  assert.deepEqual(await rows.row(0), { id: 0, text: "ünïcode  ✓", nested: { list: [0, 1] } });
  assert.deepEqual(await rows.row(2499), { id: 2499, text: `ünïcode ${"x".repeat(2499 % 7)} ✓`, nested: { list: [2499, 2500] } });
  await assert.rejects(rows.row(2500), RangeError);
  await rows.close();

  const reopened = await SpooledRows.open(path, unreadable);
  assert.equal(reopened.count, 2500);
  assert.deepEqual(await reopened.row(1234), { id: 1234, text: `ünïcode ${"x".repeat(1234 % 7)} ✓`, nested: { list: [1234, 1235] } });
  await reopened.close();
});

test("a spool cut short by a crash is written again from the source", async () => {
  const path = join(dir, "b", "rows.jsonl");
  await (await SpooledRows.open(path, () => ({ rows: stream(10) }))).close();
  truncateSync(path, statSync(path).size - 3);
  const rewritten = await SpooledRows.open(path, () => ({ rows: stream(12) }));
  assert.equal(rewritten.count, 12);
  assert.deepEqual(await rewritten.row(11), { id: 11, text: `ünïcode ${"x".repeat(4)} ✓`, nested: { list: [11, 12] } });
  await rewritten.close();
});

test("an empty dataset is a spool of no rows", async () => {
  const rows = await SpooledRows.open(join(dir, "c", "rows.jsonl"), () => ({ rows: [] }));
  assert.equal(rows.count, 0);
  await assert.rejects(rows.row(0), RangeError);
  await rows.close();
});

test("the rows the source left out are counted beside the spool and read back when it is reused", async () => {
  const path = join(dir, "d", "rows.jsonl");
  let filtered = 0;
  async function* keepingEven() {
    for (let i = 0; i < 10; i++)
      if (i % 2 === 0) yield { id: i };
      else filtered++;
  }
  const rows = await SpooledRows.open(path, () => ({ rows: keepingEven(), filtered: () => filtered }));
  assert.deepEqual([rows.count, rows.filtered], [5, 5], "counted once the source is read to its end");
  await rows.close();
  const reopened = await SpooledRows.open(path, unreadable);
  assert.deepEqual([reopened.count, reopened.filtered], [5, 5]);
  await reopened.close();
  unlinkSync(`${path}.filtered`);
  const older = await SpooledRows.open(path, unreadable);
  assert.equal(older.filtered, 0, "a spool written before counts were kept still opens, nothing counted");
  await older.close();
});
