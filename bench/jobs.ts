/**
 * npm run bench:jobs
 * How the controller's per-job bookkeeping scales with the dataset, measured in one run:
 *  1. work hand-out (next + renew + submit per item, the runners' API path without HTTP) per item for jobs of 1k,
 *     10k and 100k items; scaleRatio = per-item cost at 100k / at 1k (flat bookkeeping: about 1);
 *  2. a restart: rebuilding the 100k-item job from its results and journal;
 *  3. memory of a job's rows: 50k SWE-smith-sized rows (about 2 KiB each) held in memory, as parsed objects,
 *     vs spooled to disk and read by index, each in a fresh child process: memory retained after GC (JS heap plus
 *     buffers; rowsMemoryRatio = in memory / spooled) and peak RSS (spooling streams, so its peak is transient);
 *     and the latency of reading a spooled row.
 * The last line is one JSON object with the headline figures.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SpooledRows } from "../src/operator/rolloutjob/rows.ts";
import { JobTracker } from "../src/operator/rolloutjob/tracker.ts";

const SIZES = [1_000, 10_000, 100_000];
const ROWS = 50_000;
const READS = 5_000;
const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
const percentile = (samples: number[], p: number): number =>
  [...samples].sort((a, b) => a - b)[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))] ?? NaN;

/** A row shaped like SWE-smith-oracle's: a problem statement and test lists, about 2 KiB of JSON. */
const row = (i: number) => ({
  instance_id: `org__repo.${i.toString(16)}`,
  repo: "org/repo",
  base_commit: "0123456789abcdef0123456789abcdef01234567",
  problem_statement: `Item ${i}: ${"The function returns the wrong value when the input is empty. ".repeat(16)}`,
  FAIL_TO_PASS: Array.from({ length: 4 }, (_, k) => `tests/test_mod.py::test_case_${i}_${k}`),
  PASS_TO_PASS: Array.from({ length: 20 }, (_, k) => `tests/test_other.py::test_keep_${k}`),
});
function* rows(count: number) {
  for (let i = 0; i < count; i++) yield row(i);
}

/** What the process keeps after a full GC: JS heap and buffers (RSS keeps pages the heap grew into). */
const retainedMiB = () => {
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return (heapUsed + arrayBuffers) / 2 ** 20;
};
const peakRssMiB = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? NaN) / 1024;

interface RowsFigures {
  retainedMiB: number;
  peakRssMiB: number;
  p50Ms: number;
  p99Ms: number;
}

/** Child mode: one way of holding the rows, in a process of its own so the two figures do not mix. */
async function rowsChild(mode: string, dir: string): Promise<void> {
  const before = retainedMiB();
  let read: (index: number) => Promise<unknown> | unknown;
  if (mode === "memory") {
    const held = [...rows(ROWS)];
    read = (index) => held[index];
  } else {
    const spool = await SpooledRows.open(join(dir, "rows.jsonl"), () => ({ rows: rows(ROWS) }));
    read = (index) => spool.row(index);
  }
  const latencies: number[] = [];
  for (let k = 0; k < READS; k++) {
    const started = performance.now();
    await read((k * 7919) % ROWS);
    latencies.push(performance.now() - started);
  }
  const retained = retainedMiB() - before;
  await read(0); // the rows stay reachable until after the measurement
  const figures: RowsFigures = {
    retainedMiB: retained,
    peakRssMiB: peakRssMiB(),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
  process.stdout.write(JSON.stringify(figures));
}

function measureRows(mode: "memory" | "spool", dir: string): RowsFigures {
  const child = spawnSync(process.execPath, ["--expose-gc", import.meta.filename, "--rows-child", mode, "--dir", dir], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`rows child (${mode}) failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as RowsFigures;
}

async function handOut(items: number, dir: string): Promise<{ perItemMs: number; restartMs: number }> {
  const options = {
    resultsPath: join(dir, "results.jsonl"),
    journalPath: join(dir, "journal.jsonl"),
    jobUid: "bench",
    items,
    backoffLimit: 3,
    leaseTTLMs: 60_000,
  };
  const tracker = new JobTracker(options);
  const started = performance.now();
  for (let i = 0; i < items; i++) {
    const assignment = await tracker.next("runner");
    if (assignment.kind !== "item") throw new Error(`expected an item, got ${assignment.kind}`);
    tracker.renew(assignment.lease.id);
    // Every tenth attempt fails and comes back, as dead sandboxes make them do.
    if (i % 10 === 9) {
      await tracker.fail(assignment.lease.id);
      const retry = await tracker.next("runner");
      if (retry.kind !== "item") throw new Error("the failed item did not come back");
      await tracker.submit({ index: retry.lease.index, attempt: retry.lease.attempt, scores: [1], group: {} });
    } else {
      await tracker.submit({ index: assignment.lease.index, attempt: assignment.lease.attempt, scores: [i % 3 === 0 ? 1 : 0], group: {} });
    }
  }
  const perItemMs = (performance.now() - started) / items;
  const restartStarted = performance.now();
  const restarted = new JobTracker(options);
  const restartMs = performance.now() - restartStarted;
  if (!restarted.finished) throw new Error("the restarted tracker lost items");
  return { perItemMs, restartMs };
}

const { values } = parseArgs({ options: { "rows-child": { type: "string" }, dir: { type: "string" } } });
if (values["rows-child"]) {
  await rowsChild(values["rows-child"], values.dir!);
} else {
  const dir = mkdtempSync(join(tmpdir(), "bench-jobs-"));
  try {
    const perSize = [];
    for (const items of SIZES) perSize.push({ items, ...(await handOut(items, join(dir, `hand-out-${items}`))) });
    for (const { items, perItemMs, restartMs } of perSize) {
      console.log(
        `hand-out ${items} items: ${round(perItemMs * 1000, 1)} µs per item; restart rebuilds the job in ${round(restartMs, 1)} ms`,
      );
    }
    const memory = measureRows("memory", join(dir, "rows-memory"));
    const spool = measureRows("spool", join(dir, "rows-spool"));
    console.log(
      `rows (${ROWS} x ~2 KiB): retained in memory ${round(memory.retainedMiB, 1)} MiB vs spooled ${round(spool.retainedMiB, 2)} MiB; ` +
        `peak RSS ${round(memory.peakRssMiB)} vs ${round(spool.peakRssMiB)} MiB`,
    );
    console.log(`spooled row read: p50 ${round(spool.p50Ms * 1000, 1)} µs, p99 ${round(spool.p99Ms * 1000, 1)} µs`);
    const first = perSize[0]!;
    const last = perSize.at(-1)!;
    console.log(
      JSON.stringify({
        handOutPerItemUs1k: round(first.perItemMs * 1000, 1),
        handOutPerItemUs100k: round(last.perItemMs * 1000, 1),
        scaleRatio: round(last.perItemMs / first.perItemMs, 2),
        restartMs100k: round(last.restartMs, 1),
        rowsRetainedInMemoryMiB: round(memory.retainedMiB, 1),
        rowsRetainedSpooledMiB: round(spool.retainedMiB, 2),
        rowsMemoryRatio: round(memory.retainedMiB / Math.max(spool.retainedMiB, 0.01), 1),
        rowsPeakRssRatio: round(memory.peakRssMiB / spool.peakRssMiB, 2),
        spooledRowReadP99Us: round(spool.p99Ms * 1000, 1),
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
