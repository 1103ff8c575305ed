/**
 * The Hugging Face loader against a local server with the Hub's API shape: the parquet listing, then parquet files
 * served with HEAD and byte ranges. The parquet file is written here with hyparquet-writer.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { parquetWriteBuffer } from "hyparquet-writer";
import { openDataset, parseJsonl, readRows } from "../../../src/envs/datasets/index.ts";
import { testPlan, type SweSmithConfig } from "../../../src/envs/swe-smith-oracle/env.ts";
import { taskCheckout, type SweSmithItem } from "../../../src/envs/swe-smith-oracle/item.ts";
import { PUBLISHED, schemaOf } from "./published-swe-rows.ts";
import { getEnvironment } from "../../../src/envs/index.ts";

const ROWS = 40;
const ROW_GROUP = 10;
const files = new Map<string, Buffer>();
/** The Hub's parquet listing per dataset and split: `GET /api/datasets/<name>/parquet/default/<split>`. */
const listings = new Map<string, string[]>();
const parquetListingPath = (name: string, split: string) => `/api/datasets/${name}/parquet/default/${split}`;
const requests: string[] = [];
let server: Server;
let endpoint: string;

function swePart(offset: number): Buffer {
  const ids = Array.from({ length: ROWS / 2 }, (_, i) => `owner__lib.${offset + i}`);
  const arrayBuffer = parquetWriteBuffer({
    columnData: [
      { name: "instance_id", data: ids, type: "STRING" },
      { name: "repo", data: ids.map(() => "owner/lib"), type: "STRING" },
      { name: "base_commit", data: ids.map(() => "0123456789abcdef0123456789abcdef01234567"), type: "STRING" },
      { name: "problem_statement", data: ids.map((id) => `problem of ${id}`), type: "STRING" },
      { name: "FAIL_TO_PASS", data: ids.map((id) => JSON.stringify([`tests/test_x.py::test_${id.split(".")[1]}`])), type: "STRING" },
      { name: "PASS_TO_PASS", data: ids.map(() => "[]"), type: "STRING" },
      { name: "row_number", data: ids.map((_, i) => BigInt(offset + i)), type: "INT64" },
    ],
    rowGroupSize: ROW_GROUP,
  });
  return Buffer.from(arrayBuffer);
}

before(async () => {
  files.set("/files/train-0.parquet", swePart(0));
  files.set("/files/train-1.parquet", swePart(ROWS / 2));
  listings.set(parquetListingPath("NousResearch/SWE-smith-oracle", "train"), ["/files/train-0.parquet", "/files/train-1.parquet"]);
  for (const { name, split, columns } of PUBLISHED) {
    const path = `/files/${name}/${split}-0.parquet`;
    files.set(
      path,
      Buffer.from(parquetWriteBuffer({ columnData: columns.map(({ name, data }) => ({ name, data })), schema: schemaOf(columns) })),
    );
    listings.set(parquetListingPath(name, split), [path]);
  }
  server = createServer((request, response) => {
    const url = request.url ?? "";
    requests.push(`${request.method} ${url} ${request.headers.range ?? ""}`);
    const listing = listings.get(url);
    if (listing) {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify(listing.map((path) => `${endpoint}${path}`)));
      return;
    }
    const body = files.get(url);
    if (!body) {
      response.statusCode = 404;
      response.end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Number(range[2]) + 1 : body.length;
    response.setHeader("accept-ranges", "bytes");
    response.setHeader("content-length", String(request.method === "HEAD" ? body.length : end - start));
    if (range) {
      response.statusCode = 206;
      response.setHeader("content-range", `bytes ${start}-${end - 1}/${body.length}`);
    }
    if (request.method === "HEAD") return void response.end();
    response.end(body.subarray(start, end));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function rowsOf(options: { maxItems?: number; shuffleSeed?: number }): Promise<Record<string, unknown>[]> {
  const { source } = await openDataset(
    { huggingFace: { name: "NousResearch/SWE-smith-oracle", split: "train", config: "default" } },
    { hfEndpoint: endpoint },
  );
  const rows: Record<string, unknown>[] = [];
  for await (const row of readRows(source, options)) rows.push(row);
  return rows;
}

test("every row of every file, in file order, parses as a swe-smith-oracle item", async () => {
  const rows = await rowsOf({});
  assert.deepEqual(
    rows.map((r) => r.row_number),
    Array.from({ length: ROWS }, (_, i) => i),
  );
  const env = getEnvironment("swe-smith-oracle");
  const item = env.parseItem(rows[3]) as { FAIL_TO_PASS: string[] };
  assert.deepEqual(item.FAIL_TO_PASS, ["tests/test_x.py::test_3"]);
  assert.ok(requests.some((r) => r.startsWith("GET /api/datasets/NousResearch/SWE-smith-oracle/parquet/default/train")));
});

test("maxItems stops reading early: a few rows never touch the second file", async () => {
  requests.length = 0;
  const rows = await rowsOf({ maxItems: 3 });
  assert.deepEqual(
    rows.map((r) => r.row_number),
    [0, 1, 2],
  );
  assert.ok(requests.some((r) => r.includes("train-0.parquet")));
  assert.ok(!requests.some((r) => r.includes("train-1.parquet")), requests.join("\n"));
});

test("a shuffle seed gives the same order every time, different from file order, over all rows", async () => {
  const first = (await rowsOf({ shuffleSeed: 42 })).map((r) => r.row_number as number);
  assert.deepEqual(
    first,
    (await rowsOf({ shuffleSeed: 42 })).map((r) => r.row_number),
  );
  assert.notDeepEqual(
    first,
    (await rowsOf({ shuffleSeed: 43 })).map((r) => r.row_number),
  );
  assert.deepEqual(
    [...first].sort((a, b) => a - b),
    Array.from({ length: ROWS }, (_, i) => i),
  );
  assert.deepEqual(
    (await rowsOf({ shuffleSeed: 42, maxItems: 5 })).map((r) => r.row_number),
    first.slice(0, 5),
  );
});

test("a missing split is a clear error", async () => {
  const { source } = await openDataset(
    { huggingFace: { name: "NousResearch/SWE-smith-oracle", split: "test", config: "default" } },
    { hfEndpoint: endpoint },
  );
  await assert.rejects(async () => {
    for await (const _ of readRows(source)) break;
  }, /HTTP 404/);
});

describe("the SWE datasets as the Hub publishes them (parquet) and as JSONL: one reader, told apart by their columns", () => {
  const env = getEnvironment("swe-smith-oracle") as unknown as { parseItem(row: unknown): SweSmithItem; config: SweSmithConfig };
  for (const { name, split, columns, expected } of PUBLISHED) {
    test(name, async () => {
      const { source } = await openDataset({ huggingFace: { name, split, config: "default" } }, { hfEndpoint: endpoint });
      const [fromParquet] = await Array.fromAsync(readRows(source));
      const jsonl = JSON.stringify(Object.fromEntries(columns.map((column) => [column.name, column.jsonl ?? column.data[0]])));
      const [fromJsonl] = parseJsonl(jsonl, "published.jsonl");
      for (const row of [fromParquet, fromJsonl]) {
        const item = env.parseItem(row);
        const checkout = taskCheckout(item);
        const plan = testPlan(item, env.config);
        assert.ok(!("unrunnable" in plan), JSON.stringify(plan));
        assert.deepEqual(
          {
            id: item.instance_id,
            repo: item.repo,
            given: checkout.given,
            pristine: checkout.pristine,
            patchIsReversed: checkout.patchIsReversed,
            testPatch: item.test_patch !== undefined,
            failToPass: item.FAIL_TO_PASS,
            passToPass: item.PASS_TO_PASS,
            profile: plan.profile.name,
            command: plan.command,
          },
          expected,
        );
      }
    });
  }
});
