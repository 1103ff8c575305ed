import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { rolloutJobSpec } from "../../../src/api/index.ts";
import { RunnersApiClient, RunnersApiError } from "../../../src/controller/runners-api/client.ts";
import { ActiveJobs } from "../../../src/controller/runners-api/registry.ts";
import { runnersApi } from "../../../src/controller/runners-api/routes.ts";
import { JobTracker } from "../../../src/controller/rolloutjob/tracker.ts";
import { createProbeServer, listen } from "../../../src/controller/runtime/http.ts";
import { ControllerMetrics } from "../../../src/controller/runtime/metrics.ts";

const dir = mkdtempSync(join(tmpdir(), "runners-api-"));
const jobs = new ActiveJobs();
let server: Server;
let url = "";
const spec = rolloutJobSpec.parse({ poolRef: { name: "p" }, environment: { name: "shell-task" }, dataset: { inline: [{ a: 0 }, { a: 1 }] }, model: { builtin: { policy: "oracle" } } });

function activeJob(name: string, token: string) {
  const tracker = new JobTracker({ resultsPath: join(dir, `${name}.jsonl`), statePath: join(dir, `${name}.json`), items: 2, backoffLimit: 1, leaseTTLMs: 60_000 });
  jobs.set({ key: `ns/${name}`, poolKey: "ns/p", token, spec, rows: [{ a: 0 }, { a: 1 }], environmentConfig: {}, tracker, forwarder: undefined, suspended: false, poolGone: false, slotLeases: new Set(), onProgress: () => {} });
  return tracker;
}

before(async () => {
  const metrics = new ControllerMetrics();
  server = createProbeServer({ registry: metrics.registry, healthy: () => true, ready: () => true, routes: [runnersApi(jobs, () => undefined, metrics)] });
  url = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
  activeJob("a", "token-a");
  activeJob("b", "token-b");
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const client = (job: string, token: string) => new RunnersApiClient({ url, namespace: "ns", job, token, unreachableMs: 0 });

test("a runner gets items with their rows, and a retried group POST is stored once", async () => {
  const api = client("a", "token-a");
  const work = await api.next("r1");
  assert.ok("leaseId" in work);
  assert.deepEqual([work.index, work.attempt, work.row], [0, 1, { a: 0 }]);
  assert.deepEqual(await api.submitGroup(0, 1, [1, 1], { scores: [1, 1] }), { stored: true });
  assert.deepEqual(await api.submitGroup(0, 1, [1, 1], { scores: [1, 1] }), { stored: false });
  assert.equal(jobs.get("ns/a")!.tracker.aggregates().groups, 1);
});

test("a wrong token is refused, and one job's token cannot reach another job", async () => {
  await assert.rejects(client("a", "nope").next("r"), (e: unknown) => e instanceof RunnersApiError && e.status === 401);
  await assert.rejects(client("b", "token-a").next("r"), (e: unknown) => e instanceof RunnersApiError && e.status === 401);
});

test("slot calls for a lease the job does not hold are refused", async () => {
  await assert.rejects(client("a", "token-a").call("slots/release", { leaseId: "sandbox/0/abc" }), (e: unknown) => e instanceof RunnersApiError && e.status === 404);
});

test("/metrics exposes reconcile and domain metrics", async () => {
  const text = await (await fetch(`${url}/metrics`)).text();
  assert.match(text, /hermes_trajectories_total\{job="ns\/a"\} 2/);
  assert.match(text, /hermes_job_pass_rate\{job="ns\/a"\} 1/);
  assert.match(text, /workqueue_depth/);
});

test("with its pool deleted, a job tells runners to stop and a failed attempt is handed back, not counted", async () => {
  const tracker = activeJob("gone", "token-gone");
  const api = client("gone", "token-gone");
  const work = await api.next("r");
  assert.ok("leaseId" in work);
  jobs.get("ns/gone")!.poolGone = true;
  await api.fail(work.leaseId);
  assert.deepEqual(await api.next("r"), { suspended: true });
  const agg = tracker.aggregates();
  assert.deepEqual([agg.failed, agg.retried, agg.running], [0, 0, 0]);
  jobs.get("ns/gone")!.poolGone = false;
  const again = await api.next("r");
  assert.ok("leaseId" in again && again.attempt === 1, "the hand-back spent no attempt");
});

test("a suspended job hands out no slot, and an attempt it cut short is handed back, not failed", async () => {
  const tracker = activeJob("paused", "token-paused");
  const api = client("paused", "token-paused");
  const work = await api.next("r");
  assert.ok("leaseId" in work);
  jobs.get("ns/paused")!.suspended = true;
  await assert.rejects(api.call("slots/acquire", {}), (e: unknown) => e instanceof RunnersApiError && e.status === 409);
  await api.fail(work.leaseId);
  assert.deepEqual([tracker.aggregates().failed, tracker.aggregates().retried], [0, 0]);
});
