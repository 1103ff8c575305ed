import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { API_VERSION, sandboxPoolSpec, type RolloutJob, type RolloutJobStatus, type SandboxPool } from "../../../src/api/index.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import { JOB_FINALIZER } from "../../../src/operator/rolloutjob/desired.ts";
import { jobReconciler } from "../../../src/operator/rolloutjob/reconcile.ts";
import { RunnersApiClient } from "../../../src/runner/client.ts";
import { ActiveJobs } from "../../../src/operator/runners-api/registry.ts";
import { runnersApi } from "../../../src/operator/runners-api/routes.ts";
import { createProbeServer, listen } from "../../../src/operator/runtime/http.ts";
import { ControllerMetrics } from "../../../src/operator/runtime/metrics.ts";
import { PoolRuntimes } from "../../../src/operator/sandboxpool/runtimes.ts";
import { scoredGroup } from "../../support/scored-group.ts";
import { fakeBackend, recordingClient, recordingRecorder } from "../../unit/operator/fakes.ts";
import { FakeClock } from "../../../src/base/clock.ts";

const dataDir = mkdtempSync(join(tmpdir(), "atropos-forward-"));
const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
  rmSync(dataDir, { recursive: true, force: true });
});
const now = new Date("2026-01-01T00:00:00Z");

/** A trainer API in atroposlib's shape; `down` answers 503 to scored data. */
async function trainer() {
  const scored: Record<string, unknown>[] = [];
  const state = { down: false, scoredCalls: 0 };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      const raw = Buffer.concat(chunks);
      const text = (request.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString("utf8");
      const reply = (status: number, body: unknown) =>
        response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      if (request.url === "/register-env") return reply(200, { status: "success", env_id: 3 });
      if (request.url === "/info") return reply(200, { batch_size: 16 });
      if (request.url === "/scored_data") {
        state.scoredCalls++;
        if (state.down) return reply(503, { detail: "busy" });
        scored.push(JSON.parse(text) as Record<string, unknown>);
        return reply(200, { status: "received" });
      }
      reply(404, {});
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, scored, state };
}

const pool: SandboxPool = {
  apiVersion: API_VERSION,
  kind: "SandboxPool",
  metadata: { name: "pool", namespace: "ns" },
  spec: sandboxPoolSpec.parse({ backend: "local" }),
  status: { conditions: [{ type: "Ready", status: "True", reason: "SandboxesReady", message: "", lastTransitionTime: now.toISOString() }] },
};

/** One controller incarnation: the job reconciler and the runners' API over the same data dir. */
async function controller(job: RolloutJob) {
  const rec = recordingClient({ secrets: {} });
  const runtimes = new PoolRuntimes(async () => fakeBackend().backend, new InMemoryLeaseStore());
  await runtimes.ensure({ key: "ns/pool", namespace: "ns", name: "pool", uid: "pool-uid" }, pool.spec);
  const active = new ActiveJobs();
  let enqueued = 0;
  const reconcile = jobReconciler({
    getJob: () => job,
    getPool: () => pool,
    listRunnerPods: () => [],
    client: rec.client,
    runtimes,
    active,
    recorder: recordingRecorder().recorder,
    loadDataset: async (_ns, spec) => ({ rows: spec.dataset.inline ?? [], environmentConfig: {} }),
    restoredSlotLeases: async () => [],
    enqueue: () => void enqueued++,
    runnerPods: { apiURL: "http://127.0.0.1:1", defaultImage: "img", imagePullPolicy: "Never" },
    dataDir,
    clock: new FakeClock(now.getTime()),
    forwardRetryDelayMs: 5,
  });
  const metrics = new ControllerMetrics();
  const server = createProbeServer({
    registry: metrics.registry,
    healthy: () => true,
    ready: () => true,
    routes: [runnersApi(active, () => undefined, metrics)],
  });
  servers.push(server);
  const url = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
  const lastStatus = () => rec.actions.filter((a) => a.verb === "patchStatus").at(-1)?.body as RolloutJobStatus | undefined;
  const api = () =>
    new RunnersApiClient({
      url,
      namespace: "ns",
      job: job.metadata.name,
      token: active.get(`ns/${job.metadata.name}`)!.token,
      unreachableMs: 0,
    });
  return {
    reconcile,
    active,
    api,
    lastStatus,
    enqueued: () => enqueued,
    close: () => active.get(`ns/${job.metadata.name}`)?.forwarder?.close(),
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("results.type atropos: groups go to the trainer after the JSONL, once each, retried while it is down, across a restart", async () => {
  const t = await trainer();
  const job: RolloutJob = {
    apiVersion: API_VERSION,
    kind: "RolloutJob",
    metadata: { name: "fwd", namespace: "ns", uid: "u", generation: 1, finalizers: [JOB_FINALIZER] },
    spec: {
      poolRef: { name: "pool" },
      environment: { name: "shell-task" },
      dataset: { inline: [{ a: 0 }, { a: 1 }] },
      model: { builtin: { policy: "oracle" } },
      groupSize: 1,
      results: { type: "atropos", url: t.url },
    } as unknown as RolloutJob["spec"],
  };
  const first = await controller(job);
  await first.reconcile("ns/fwd");
  assert.equal(first.lastStatus()?.resultsLocation, t.url, "status shows the trainer URL");

  // Item 0: stored and forwarded; a retried intake POST sends nothing more.
  const api = first.api();
  const work0 = await api.next("r1");
  assert.ok("leaseId" in work0);
  assert.deepEqual(await api.submitGroup(work0.index, work0.attempt, [1], scoredGroup(work0.index, [1])), { stored: true });
  assert.deepEqual(await api.submitGroup(work0.index, work0.attempt, [1], scoredGroup(work0.index, [1])), { stored: false });
  await until(() => t.scored.length === 1, "group 0 at the trainer");

  // Item 1 while the trainer is down: in the JSONL, not forwarded; the job waits for it instead of completing.
  t.state.down = true;
  const work1 = await api.next("r1");
  assert.ok("leaseId" in work1);
  await api.submitGroup(work1.index, work1.attempt, [0], scoredGroup(work1.index, [0]));
  const jsonl = readFileSync(join(dataDir, "ns", "fwd", "u", "results.jsonl"), "utf8")
    .trim()
    .split("\n");
  assert.equal(jsonl.length, 2, "the JSONL has both groups whatever the trainer does");
  await until(() => first.active.get("ns/fwd")!.forwarder!.lastError !== undefined, "a failed forwarding attempt");
  await first.reconcile("ns/fwd");
  const waiting = first.lastStatus()!;
  assert.equal(waiting.phase, "Running");
  const running = waiting.conditions!.find((c) => c.type === "Running")!;
  assert.equal(running.reason, "ForwardingResults");
  assert.match(running.message, /1 group\(s\) still to send/);

  // The controller restarts while the trainer is still down; the new one forwards only item 1 once it is back.
  await first.close();
  const callsBefore = t.state.scoredCalls;
  const second = await controller(job);
  await second.reconcile("ns/fwd");
  await until(() => t.state.scoredCalls > callsBefore, "the new controller retrying");
  t.state.down = false;
  await until(() => t.scored.length === 2, "group 1 at the trainer");
  await until(() => second.active.get("ns/fwd")!.forwarder!.pending === 0, "backlog empty");
  assert.deepEqual(
    t.scored.map((g) => [g.env_id, g.scores]),
    [
      [3, [1]],
      [3, [0]],
    ],
    "each group once, in order, with the trainer's env_id",
  );
  assert.ok(second.enqueued() > 0, "forwarding progress requeues the job");
  await second.reconcile("ns/fwd");
  const done = second.lastStatus()!;
  assert.equal(done.phase, "Complete");
  assert.equal(done.resultsLocation, t.url);
  await second.close();
});
