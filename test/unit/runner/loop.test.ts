import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { rolloutJobSpec } from "../../../src/api/index.ts";
import { ActiveJobs } from "../../../src/operator/runners-api/registry.ts";
import { runnersApi } from "../../../src/operator/runners-api/routes.ts";
import { SpooledRows } from "../../../src/operator/rolloutjob/rows.ts";
import { JobTracker } from "../../../src/operator/rolloutjob/tracker.ts";
import { createProbeServer, listen } from "../../../src/operator/runtime/http.ts";
import { ControllerMetrics } from "../../../src/operator/runtime/metrics.ts";
import type { PoolRuntime } from "../../../src/operator/sandboxpool/runtimes.ts";
import { runRunner } from "../../../src/runner/loop.ts";
import { fakePoolRuntime } from "../operator/fakes.ts";

/** A runner pod's loop against the real runners' API routes, on a pool of one in-memory sandbox. */
const dir = mkdtempSync(join(tmpdir(), "runner-loop-"));
const jobs = new ActiveJobs();
const pools = new Map<string, PoolRuntime>();
let server: Server;
let url = "";

const rows = [{ id: "t0", goal: "g", check: "true" }, { nonsense: true }, { id: "t2", goal: "g", check: "true" }];

before(async () => {
  server = createProbeServer({
    registry: new ControllerMetrics().registry,
    healthy: () => true,
    ready: () => true,
    routes: [runnersApi(jobs, (key) => pools.get(key), new ControllerMetrics())],
  });
  url = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
  const { runtime, addSandbox } = await fakePoolRuntime(2, 5000);
  await addSandbox();
  pools.set("ns/p", runtime);
});
after(() => {
  for (const pool of pools.values()) pool.slots.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a runner posts one group per good item, reports the bad one, and ends when the job is done", async () => {
  const spec = rolloutJobSpec.parse({
    poolRef: { name: "p" },
    environment: { name: "shell-task" },
    dataset: { inline: rows },
    model: { builtin: { policy: "oracle" } },
    groupSize: 2,
    backoffLimit: 0,
    runners: { replicas: 1, trajectoriesPerRunner: 4 },
  });
  const tracker = new JobTracker({
    resultsPath: join(dir, "run.jsonl"),
    journalPath: join(dir, "run.journal.jsonl"),
    items: rows.length,
    backoffLimit: 0,
    leaseTTLMs: 60_000,
  });
  jobs.set({
    key: "ns/run",
    uid: "uid-run",
    poolKey: "ns/p",
    token: "token-run",
    spec,
    rows: await SpooledRows.open(join(dir, "run.rows.jsonl"), () => ({ rows })),
    environmentConfig: {},
    tracker,
    forwarder: undefined,
    suspended: false,
    poolGone: false,
    slotLeases: new Set(),
    onProgress: () => {},
  });
  const summary = await runRunner({
    apiURL: url,
    namespace: "ns",
    job: "run",
    token: "token-run",
    runnerId: "r1",
    signal: new AbortController().signal,
  });
  assert.deepEqual(summary, { groups: 2, failed: 1, handedBack: 0, reason: "done" });
  const aggregates = tracker.aggregates();
  assert.deepEqual([aggregates.groups, aggregates.failed], [2, 1]);
});
