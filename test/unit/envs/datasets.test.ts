import assert from "node:assert/strict";
import { test } from "node:test";
import { DatasetError } from "../../../src/base/errors.ts";
import { configMapSource, memorySource, parseJsonl, permute, readRows, shuffleBuffer } from "../../../src/envs/datasets/index.ts";
import { parquetListingURL, plainValue, rowGroupRanges } from "../../../src/envs/datasets/huggingface.ts";

async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const row of rows) out.push(row);
  return out;
}

async function* stream(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test("permute: same seed same order, different seed different order, always a permutation", () => {
  const values = range(100);
  assert.deepEqual(permute(values, 7), permute(values, 7));
  assert.notDeepEqual(permute(values, 7), permute(values, 8));
  assert.notDeepEqual(permute(values, 7), values);
  assert.deepEqual(
    [...permute(values, 7)].sort((a, b) => a - b),
    values,
  );
});

test("shuffleBuffer: deterministic, a permutation of the stream, mixes within its bound", async () => {
  const first = await collect(shuffleBuffer(stream(500), 3, 50));
  assert.deepEqual(first, await collect(shuffleBuffer(stream(500), 3, 50)));
  assert.notDeepEqual(first, await collect(shuffleBuffer(stream(500), 4, 50)));
  assert.deepEqual(
    [...first].sort((a, b) => a - b),
    range(500),
  );
  assert.notDeepEqual(first, range(500));
  // bounded memory: nothing is emitted before `size` rows arrived, so row k comes out at position >= k - size
  first.forEach((value, position) => assert.ok(value <= position + 50));
});

test("readRows: maxItems applies after the seeded order; no seed keeps file order", async () => {
  const source = memorySource(
    "m",
    range(20).map((i) => ({ i })),
  );
  assert.deepEqual(await collect(readRows(source, { maxItems: 3 })), [{ i: 0 }, { i: 1 }, { i: 2 }]);
  const shuffled = await collect(readRows(source, { maxItems: 5, shuffleSeed: 11 }));
  assert.deepEqual(shuffled, (await collect(readRows(source, { shuffleSeed: 11 }))).slice(0, 5));
  assert.deepEqual(shuffled, await collect(readRows(source, { maxItems: 5, shuffleSeed: 11 })));
});

test("JSONL text: blank lines skipped, bad lines named by number", () => {
  assert.deepEqual(parseJsonl('{"a":1}\n\n{"a":2}\n', "f"), [{ a: 1 }, { a: 2 }]);
  assert.throws(
    () => parseJsonl('{"a":1}\n{oops\n', "f"),
    (e: unknown) => e instanceof DatasetError && /f:2/.test(e.message),
  );
  assert.throws(() => parseJsonl("[1,2]\n", "f"), /must be a JSON object/);
});

test("ConfigMap: rows from data or binaryData; a missing key is an error", async () => {
  const jsonl = '{"id":"a"}\n{"id":"b"}\n';
  assert.deepEqual(
    parseJsonl('\uFEFF{"id":"a"}\r\n{"id":"b"}\r\n', "bom"),
    [{ id: "a" }, { id: "b" }],
    "a UTF-8 BOM and CRLF line ends are not part of the rows",
  );
  const configMap = {
    metadata: { name: "items", namespace: "ns" },
    data: { "items.jsonl": jsonl },
    binaryData: { "bin.jsonl": Buffer.from(jsonl).toString("base64") },
  };
  assert.deepEqual(await collect(configMapSource(configMap, "items.jsonl").rows()), [{ id: "a" }, { id: "b" }]);
  assert.deepEqual(await collect(configMapSource(configMap, "bin.jsonl").rows()), [{ id: "a" }, { id: "b" }]);
  assert.throws(() => configMapSource(configMap, "other"), /ns\/items#other: no such key/);
});

test("Hugging Face helpers: listing URL, JSON-safe values, row group ranges", () => {
  assert.equal(
    parquetListingURL("https://hub.example/", "NousResearch/SWE-smith-oracle", "default", "train"),
    "https://hub.example/api/datasets/NousResearch/SWE-smith-oracle/parquet/default/train",
  );
  assert.deepEqual(plainValue({ n: 5n, big: 2n ** 60n, when: new Date(0), list: [1n] }), {
    n: 5,
    big: "1152921504606846976",
    when: "1970-01-01T00:00:00.000Z",
    list: [1],
  });
  assert.deepEqual(rowGroupRanges([3n, 2n, 4]), [
    [0, 3],
    [3, 5],
    [5, 9],
  ]);
});
