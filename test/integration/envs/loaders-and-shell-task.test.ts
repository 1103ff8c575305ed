import assert from "node:assert/strict";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openDataset, readRows, type DatasetSpec } from "../../../src/envs/datasets/index.ts";
import { getEnvironment } from "../../../src/envs/index.ts";
import { ProcessSlot } from "./process-slot.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "hermes-envs-loaders-"));
});
after(() => rm(root, { recursive: true, force: true }));

async function all(spec: Partial<DatasetSpec>, context = {}): Promise<Record<string, unknown>[]> {
  const { source } = await openDataset(spec as DatasetSpec, context);
  const rows: Record<string, unknown>[] = [];
  for await (const row of readRows(source, spec)) rows.push(row);
  return rows;
}

test("JSONL from a file and from an http URL give the same rows; inline honours maxItems", async () => {
  const path = join(root, "items.jsonl");
  await writeFile(path, '{"id":"a"}\n{"id":"b"}\n\n{"id":"c"}\n');
  const server = createServer((_, response) => response.end('{"id":"a"}\n{"id":"b"}\n\n{"id":"c"}\n'));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/items.jsonl`;
    assert.deepEqual(await all({ jsonl: { path } }), [{ id: "a" }, { id: "b" }, { id: "c" }]);
    assert.deepEqual(await all({ jsonl: { url } }), await all({ jsonl: { path } }));
    assert.deepEqual(await all({ jsonl: { url }, shuffleSeed: 5 }), await all({ jsonl: { path }, shuffleSeed: 5 }));
  } finally {
    server.close();
  }
  assert.deepEqual(await all({ inline: [{ id: 1 }, { id: 2 }, { id: 3 }], maxItems: 2 }), [{ id: 1 }, { id: 2 }]);
});

test("JSONL saved by Windows tools (a UTF-8 BOM, CRLF line ends) reads the same from a file and a URL", async () => {
  const text = '\uFEFF{"id":"a"}\r\n{"id":"b"}\r\n\r\n';
  const path = join(root, "windows.jsonl");
  await writeFile(path, text);
  const server = createServer((_, response) => response.end(text));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/windows.jsonl`;
    assert.deepEqual(await all({ jsonl: { path } }), [{ id: "a" }, { id: "b" }]);
    assert.deepEqual(await all({ jsonl: { url } }), [{ id: "a" }, { id: "b" }]);
  } finally {
    server.close();
  }
});

test("the bundled mini-dataset: rows plus the env config it needs; preparing again is fast", async () => {
  const dir = join(root, "bundled");
  const opened = await openDataset({ bundled: "swe-smith-mini" } as DatasetSpec, { bundledDir: dir });
  assert.equal(opened.environmentConfig.repoBaseURL, `file://${dir}/`);
  const started = performance.now();
  const again = await openDataset({ bundled: "swe-smith-mini" } as DatasetSpec, { bundledDir: dir });
  assert.ok(performance.now() - started < 500, "cached");
  const rows: Record<string, unknown>[] = [];
  for await (const row of readRows(again.source)) rows.push(row);
  assert.ok(rows.length >= 6);
  const env = getEnvironment("swe-smith-oracle", again.environmentConfig);
  assert.equal(new Set(rows.map((r) => env.itemId(env.parseItem(r)))).size, rows.length);
});

test("shell-task end to end in a slot: 0.0 before, 1.0 after the oracle's command", async () => {
  const env = getEnvironment("shell-task");
  const slot = await new ProcessSlot({ root: join(root, "sandbox"), sandbox: "sb", slot: 0, isolation: "none" }).prepare();
  const item = env.parseItem({
    id: "count",
    goal: "Write the number of lines of input.txt to count.txt",
    setup: "printf 'a\\nb\\nc\\n' > input.txt",
    check: 'test "$(cat count.txt)" = 3',
    solution: "wc -l < input.txt > count.txt",
  });
  await env.setup(item, slot);
  assert.equal((await env.verify(item, slot)).score, 0);
  for (const command of env.oracleCommands(item) ?? []) assert.equal((await slot.exec({ command, timeoutMs: 5000 })).exitCode, 0);
  const solved = await env.verify(item, slot);
  assert.deepEqual([solved.score, solved.passed], [1, true]);
});
