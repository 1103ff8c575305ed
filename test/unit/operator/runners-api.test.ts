import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { rolloutJobSpec } from "../../../src/api/index.ts";
import { RunnersApiClient } from "../../../src/runner/client.ts";
import { runRunner } from "../../../src/runner/loop.ts";
import { ActiveJobs } from "../../../src/operator/runners-api/registry.ts";
import { runnersApi } from "../../../src/operator/runners-api/routes.ts";
import { SpooledRows } from "../../../src/operator/rolloutjob/rows.ts";
import { JobTracker } from "../../../src/operator/rolloutjob/tracker.ts";
import { createProbeServer, listen } from "../../../src/operator/runtime/http.ts";
import { ControllerMetrics } from "../../../src/operator/runtime/metrics.ts";
import type { PoolRuntime } from "../../../src/operator/sandboxpool/runtimes.ts";
import { scoredGroup } from "../../support/scored-group.ts";
import { fakePoolRuntime } from "./fakes.ts";
import { RunnersApiError, isSandboxError } from "../../../src/base/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "runners-api-"));
const jobs = new ActiveJobs();
const pools = new Map<string, PoolRuntime>();
let server: Server;
let url = "";
const spec = rolloutJobSpec.parse({
  poolRef: { name: "p" },
  environment: { name: "shell-task" },
  dataset: { inline: [{ a: 0 }, { a: 1 }] },
  model: { builtin: { policy: "oracle" } },
});

async function activeJob(name: string, token: string, items: unknown[] = [{ a: 0 }, { a: 1 }]) {
  const rows = await SpooledRows.open(join(dir, `${name}.rows.jsonl`), () => ({ rows: items }));
  const tracker = new JobTracker({
    resultsPath: join(dir, `${name}.jsonl`),
    journalPath: join(dir, `${name}.journal.jsonl`),
    items: items.length,
    backoffLimit: 1,
    leaseTTLMs: 60_000,
  });
  jobs.set({
    key: `ns/${name}`,
    uid: `uid-${name}`,
    poolKey: "ns/p",
    token,
    spec,
    rows,
    environmentConfig: {},
    tracker,
    forwarder: undefined,
    suspended: false,
    poolGone: false,
    slotLeases: new Set(),
    onProgress: () => {},
  });
  return tracker;
}

before(async () => {
  const metrics = new ControllerMetrics();
  server = createProbeServer({
    registry: metrics.registry,
    healthy: () => true,
    ready: () => true,
    routes: [runnersApi(jobs, (key) => pools.get(key), metrics)],
  });
  url = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
  await activeJob("a", "token-a");
  await activeJob("b", "token-b");
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The job pool `ns/p` on a fake backend, its slots not yet adopted until `addSandbox`. */
async function fakePool(slotCount: number, acquireTimeoutMs: number) {
  const { runtime, addSandbox } = await fakePoolRuntime(slotCount, acquireTimeoutMs);
  pools.set("ns/p", runtime);
  return {
    slots: runtime.slots,
    backend: runtime.backend,
    addSandbox,
    close: () => {
      pools.delete("ns/p");
      runtime.slots.close();
    },
  };
}

const client = (job: string, token: string) => new RunnersApiClient({ url, namespace: "ns", job, token, unreachableMs: 0 });

test("a runner gets items with their rows, and a retried group POST is stored once", async () => {
  const api = client("a", "token-a");
  const work = await api.next("r1");
  assert.ok("leaseId" in work);
  assert.deepEqual([work.index, work.attempt, work.row], [0, 1, { a: 0 }]);
  assert.deepEqual(await api.submitGroup(0, 1, [1, 1], scoredGroup(0, [1, 1])), { stored: true });
  assert.deepEqual(await api.submitGroup(0, 1, [1, 1], scoredGroup(0, [1, 1])), { stored: false });
  assert.equal(jobs.get("ns/a")!.tracker.aggregates().groups, 1);
});

test("a wrong token is refused, and one job's token cannot reach another job", async () => {
  await assert.rejects(client("a", "nope").next("r"), (e: unknown) => e instanceof RunnersApiError && e.status === 401);
  await assert.rejects(client("b", "token-a").next("r"), (e: unknown) => e instanceof RunnersApiError && e.status === 401);
});

test("slot calls for a lease the job does not hold are refused", async () => {
  await assert.rejects(
    client("a", "token-a").call("slots/release", { leaseId: "sandbox/0/abc" }),
    (e: unknown) => e instanceof RunnersApiError && e.status === 404,
  );
});

test("/metrics exposes reconcile and domain metrics", async () => {
  const text = await (await fetch(`${url}/metrics`)).text();
  assert.match(text, /hermes_trajectories_total\{job="ns\/a"\} 2/);
  assert.match(text, /hermes_job_pass_rate\{job="ns\/a"\} 1/);
  assert.match(text, /workqueue_depth/);
});

test("with its pool deleted, a job tells runners to stop and a failed attempt is handed back, not counted", async () => {
  const tracker = await activeJob("gone", "token-gone");
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
  const tracker = await activeJob("paused", "token-paused");
  const api = client("paused", "token-paused");
  const work = await api.next("r");
  assert.ok("leaseId" in work);
  jobs.get("ns/paused")!.suspended = true;
  await assert.rejects(api.call("slots/acquire", {}), (e: unknown) => e instanceof RunnersApiError && e.status === 409);
  await api.fail(work.leaseId);
  assert.deepEqual([tracker.aggregates().failed, tracker.aggregates().retried], [0, 0]);
});

test("slot calls wait while the pool re-adopts its sandboxes; a lost slot lease is an infrastructure failure", async () => {
  await activeJob("slots", "token-slots");
  const pool = await fakePool(2, 1000);
  try {
    // Not adopted yet (a restarted controller): told to retry, not that the lease is gone.
    const waiting = await fetch(`${url}/v1/jobs/ns/slots/slots/acquire`, {
      method: "POST",
      headers: { authorization: "Bearer token-slots" },
      body: "{}",
    });
    assert.deepEqual([waiting.status, ((await waiting.json()) as { retry?: boolean }).retry], [503, true]);

    await pool.addSandbox();
    const slot = await client("slots", "token-slots").slotProvider().acquire({ trajectoryId: "t" });
    assert.equal((await slot.exec({ command: "true", timeoutMs: 1000 })).exitCode, 0);
    await slot.writeFile("empty", ""); // an empty file is a file, not a missing field
    // The controller forgets the lease (expired, or its sandbox went away): the runner sees a sandbox that is gone.
    jobs.get("ns/slots")!.slotLeases.clear();
    await assert.rejects(slot.exec({ command: "true", timeoutMs: 1000 }), (e: unknown) => isSandboxError(e, "gone"));

    // The pool is deleted under a held slot: "gone" at once (no retrying for a pool that will not come back), and
    // the release is answered so the runner can hand its item back and stop.
    const held = await client("slots", "token-slots").slotProvider().acquire({ trajectoryId: "t2" });
    jobs.get("ns/slots")!.poolGone = true;
    const patient = new RunnersApiClient({ url, namespace: "ns", job: "slots", token: "token-slots", unreachableMs: 60_000 });
    const started = Date.now();
    await assert.rejects(
      patient.call("slots/exec", { leaseId: [...jobs.get("ns/slots")!.slotLeases][0]!, request: { command: "true", timeoutMs: 1000 } }),
      (e: unknown) => e instanceof RunnersApiError && e.status === 410,
    );
    assert.ok(Date.now() - started < 5_000, "not retried as a pool that is still loading");
    await held.release();
    assert.equal(jobs.get("ns/slots")!.slotLeases.size, 0);
  } finally {
    pool.close();
  }
});

test(
  "a slot release is answered before its workspace reset ends, and the slot is leased again only once reset",
  { timeout: 10_000 },
  async (t) => {
    await activeJob("recycle", "token-recycle");
    const { slots, backend, addSandbox, close } = await fakePool(1, 10_000);
    await addSandbox();
    try {
      let resetDone!: () => void;
      t.mock.method(backend, "resetSlot", () => new Promise<void>((resolve) => (resetDone = resolve)));
      const provider = client("recycle", "token-recycle").slotProvider();
      const first = await provider.acquire({ trajectoryId: "t1" });
      await first.release(); // times out here if the answer waited for the reset
      assert.equal(jobs.get("ns/recycle")!.slotLeases.size, 0);
      await assert.rejects(first.exec({ command: "true", timeoutMs: 1000 }), (e: unknown) => isSandboxError(e, "gone"));
      const second = provider.acquire({ trajectoryId: "t2" });
      while (slots.waiting() === 0) await new Promise((resolve) => setImmediate(resolve));
      resetDone();
      assert.equal((await second).slot, first.slot, "the one slot, once reset");
    } finally {
      close();
    }
  },
);

test("a runner's slot acquire carries the item's image to the pool", async (t) => {
  await activeJob("imaged", "token-imaged");
  const { slots, addSandbox, close } = await fakePool(1, 1000);
  await addSandbox("localhost/swe-a:1");
  try {
    const acquire = t.mock.method(slots, "acquire");
    const provider = client("imaged", "token-imaged").slotProvider();
    const slot = await provider.acquire({ trajectoryId: "t", image: "localhost/swe-a:1", group: "g1" });
    const { signal: _abandoned, ...options } = acquire.mock.calls[0]?.arguments[1] ?? {};
    assert.deepEqual(options, { timeoutMs: 1000, image: "localhost/swe-a:1", group: "g1" });
    assert.deepEqual([slot.sandbox, slot.image], ["sb", "localhost/swe-a:1"]);
    await slot.release();
  } finally {
    close();
  }
});

test("an acquire that was waiting when its job got suspended gives the slot back instead of holding it", async () => {
  await activeJob("late", "token-late");
  const { slots, addSandbox, close } = await fakePool(1, 10_000);
  await addSandbox();
  try {
    const holder = await slots.acquire("someone-else", { timeoutMs: 1000 });
    const waiting = client("late", "token-late").call("slots/acquire", {});
    while (slots.waiting() === 0) await new Promise((resolve) => setImmediate(resolve));
    jobs.get("ns/late")!.suspended = true;
    await slots.release(holder.id);
    await assert.rejects(waiting, (e: unknown) => e instanceof RunnersApiError && e.status === 409);
    assert.equal(jobs.get("ns/late")!.slotLeases.size, 0);
    assert.equal(slots.leasedSlots("sb"), 0, "the slot went back to the pool");
  } finally {
    close();
  }
});

test("a malformed request is a 400 naming the field, for every action family, never a 500", async () => {
  await activeJob("bad", "token-bad");
  const group = scoredGroup(0, [1]);
  const { item_index: _, ...metadataWithoutIndex } = group.metadata;
  const cases: [action: string, body: unknown, field: RegExp][] = [
    ["info", [], /^body: .*expected object/],
    ["next", null, /^body: .*expected object/],
    ["next", {}, /^body\.runner: .*expected string/],
    ["renew", { leaseId: 7 }, /^body\.leaseId: .*expected string/],
    ["groups", { index: 0, attempt: 1, scores: [1, "1"], group }, /^body\.scores\.1: .*expected number/],
    [
      "groups",
      { index: 0, attempt: 1, scores: [1], group: { ...group, metadata: metadataWithoutIndex } },
      /^body\.group\.metadata\.item_index: /,
    ],
    ["slots/acquire", { timeoutMs: "5" }, /^body\.timeoutMs: .*expected number/],
    ["slots/exec", { leaseId: "l", request: { command: "true" } }, /^body\.request\.timeoutMs: .*expected number/],
    ["slots/write", { leaseId: "l", path: "f" }, /^body\.base64: .*expected string/],
  ];
  for (const [action, body, field] of cases) {
    const response = await fetch(`${url}/v1/jobs/ns/bad/${action}`, {
      method: "POST",
      headers: { authorization: "Bearer token-bad" },
      body: JSON.stringify(body),
    });
    const { error } = (await response.json()) as { error: string };
    assert.equal(response.status, 400, `${action} ${JSON.stringify(body)}: ${error}`);
    assert.match(error, field, action);
  }
  assert.equal(jobs.get("ns/bad")!.tracker.aggregates().groups, 0);
});

test("an answer that does not match the protocol is a failed call naming the field, and a slot call's infrastructure failure", async () => {
  const answers: Record<string, string> = {
    next: JSON.stringify({ leaseId: "l", index: "0", attempt: 1, row: {}, expiresAt: 1, ttlMs: 1 }),
    info: "<html>not JSON</html>",
    "slots/acquire": JSON.stringify({ leaseId: "l", sandbox: "sb", slot: "0", expiresAt: 1, ttlMs: 1000 }),
  };
  const broken = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(answers[(req.url ?? "").replace("/v1/jobs/ns/x/", "")] ?? "{}");
  });
  const api = new RunnersApiClient({
    url: `http://127.0.0.1:${await listen(broken, 0, "127.0.0.1")}`,
    namespace: "ns",
    job: "x",
    token: "t",
  });
  try {
    const naming = (field: RegExp) => (e: unknown) => e instanceof RunnersApiError && field.test(e.message);
    await assert.rejects(api.next("r"), naming(/malformed answer to next: answer\.index: .*expected number/));
    await assert.rejects(api.info(), naming(/malformed answer to info: answer: .*expected object/));
    await assert.rejects(api.renew("l"), naming(/answer\.expiresAt: .*expected number/));
    await assert.rejects(
      api.slotProvider().acquire({ trajectoryId: "t" }),
      (e: unknown) => isSandboxError(e, "transient") && /answer\.slot: .*expected number/.test(e.message),
    );
  } finally {
    broken.close();
  }
});

test("a runner pod's loop runs a job over the protocol, and the groups it builds pass the intake", async () => {
  const items = [0, 1].map((i) => ({ id: `t${i}`, goal: "create f", check: "test -f f", solution: "touch f" }));
  const tracker = await activeJob("runner", "token-runner", items);
  const pool = await fakePool(2, 1000);
  await pool.addSandbox();
  try {
    const summary = await runRunner({
      apiURL: url,
      namespace: "ns",
      job: "runner",
      token: "token-runner",
      runnerId: "r",
      signal: new AbortController().signal,
    });
    assert.deepEqual([summary.reason, summary.groups, summary.failed], ["done", 2, 0]);
    assert.equal(tracker.aggregates().groups, 2);
  } finally {
    pool.close();
  }
});

test("every error answer names its catalogue code beside the message, with the status it had before", async () => {
  const post = async (path: string, body: string, token = "token-a"): Promise<[number, Record<string, unknown>]> => {
    const response = await fetch(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body });
    return [response.status, (await response.json()) as Record<string, unknown>];
  };
  const codeOf = ([status, answer]: [number, Record<string, unknown>]) => [status, answer.code];
  assert.deepEqual(await post("/v1/jobs/ns/a/next", "{}", "nope"), [401, { error: "bad or missing job token", code: "HR_UNAUTHORIZED" }]);
  assert.deepEqual(await post("/v1/jobs/ns/missing/next", "{}"), [
    503,
    { error: "job ns/missing is not served by this replica yet", code: "HR_JOB_NOT_SERVED", retry: true },
  ]);
  assert.deepEqual(codeOf(await post("/v1/jobs/ns/a/nothing", "{}")), [404, "HR_NOT_FOUND"]);
  assert.deepEqual(codeOf(await post("/v1/jobs/ns/a/next", "{")), [400, "HR_BAD_REQUEST"]);
  assert.deepEqual(codeOf(await post("/v1/jobs/ns/a/next", "{}")), [400, "HR_BAD_REQUEST"]);
  assert.deepEqual(codeOf(await post("/v1/jobs/ns/a/slots/release", '{"leaseId":"sandbox/0/abc"}')), [404, "HR_LEASE_UNKNOWN"]);
  assert.deepEqual(codeOf(await post("/v1/jobs/ns/a/renew", '{"leaseId":"no-such-lease"}')), [410, "HR_WORK_LEASE_GONE"]);
  const unrouted = await fetch(`${url}/nowhere`);
  assert.deepEqual([unrouted.status, await unrouted.json()], [404, { error: "no route for GET /nowhere", code: "HR_NOT_FOUND" }]);
});

/** A raw call with the job's token as `authorization`, answered with its status and body. */
async function raw(job: string, action: string, body: string | Buffer | ReadableStream<Uint8Array>, authorization = `Bearer token-${job}`) {
  const response = await fetch(`${url}/v1/jobs/ns/${job}/${action}`, {
    method: "POST",
    headers: { authorization },
    body,
    ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
  } as RequestInit);
  return [response.status, (await response.json()) as { error: string; code?: string }] as const;
}

test("a body over 64 MiB is a 413 whether its Content-Length says so or it streams, and the API keeps serving", async () => {
  await activeJob("big", "token-big");
  const [status, answer] = await raw("big", "groups", Buffer.alloc(65 * 1024 * 1024, 0x20));
  assert.deepEqual([status, answer.code], [413, "HR_BODY_TOO_LARGE"]);
  const chunk = new Uint8Array(1024 * 1024).fill(0x20);
  let sent = 0;
  const streamed = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 80) controller.enqueue(chunk);
      else controller.close();
    },
  });
  const [streamStatus, streamAnswer] = await raw("big", "groups", streamed);
  assert.deepEqual([streamStatus, streamAnswer.code], [413, "HR_BODY_TOO_LARGE"]);
  assert.ok("leaseId" in (await client("big", "token-big").next("r")));
});

test("an action named after an Object.prototype key is no action, and a token without `Bearer ` is refused", async () => {
  for (const action of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
    const [status, answer] = await raw("a", action, "{}");
    assert.deepEqual([status, answer.code], [404, "HR_NOT_FOUND"], action);
  }
  const [status, answer] = await raw("a", "info", "{}", "token-a");
  assert.deepEqual([status, answer.code], [401, "HR_UNAUTHORIZED"]);
});

test("a group for an item the job does not have is a 400 naming body.index, not a 500", async () => {
  const tracker = await activeJob("range", "token-range");
  for (const index of [2, 1_000_000]) {
    const body = JSON.stringify({ index, attempt: 1, scores: [1], group: scoredGroup(index, [1]) });
    const [status, answer] = await raw("range", "groups", body);
    assert.equal(status, 400, answer.error);
    assert.match(answer.error, /^body\.index: item \d+ is not in the job \(it has 2 items\)/);
  }
  assert.equal(tracker.aggregates().groups, 0);
});

test("a slot command beyond the job's own limits is refused naming the field; the job's longest command is served", async () => {
  await activeJob("limits", "token-limits");
  jobs.get("ns/limits")!.environmentConfig = { checkTimeoutSeconds: 3600 }; // an environment step longer than a trajectory
  const exec = (request: Record<string, unknown>, leaseId = "l") =>
    raw("limits", "slots/exec", JSON.stringify({ leaseId, request: { command: "true", ...request } }));
  for (const [request, field] of [
    [{ timeoutMs: 3600_001 }, /^body\.request\.timeoutMs: 3600001 is over the job's longest command \(3600000\)/],
    [{ timeoutMs: 1000, maxOutputBytes: 1e12 }, /^body\.request\.maxOutputBytes: 1000000000000 is over the cap/],
    [{ timeoutMs: -1 }, /^body\.request\.timeoutMs: /],
    [{ timeoutMs: 1000, maxOutputBytes: 0.5 }, /^body\.request\.maxOutputBytes: /],
  ] as const) {
    const [status, answer] = await exec(request);
    assert.equal(status, 400, `${JSON.stringify(request)}: ${answer.error}`);
    assert.match(answer.error, field);
  }
  const pool = await fakePool(1, 1000);
  await pool.addSandbox();
  try {
    const { leaseId } = await client("limits", "token-limits").call("slots/acquire", {});
    for (const request of [{ timeoutMs: 3600_000 }, { timeoutMs: 1800_000, maxOutputBytes: 16 * 1024 * 1024 }]) {
      const [status, answer] = await exec(request, leaseId);
      assert.equal(status, 200, `${JSON.stringify(request)}: ${answer.error}`);
    }
  } finally {
    pool.close();
  }
});

/** Yields until the pool has `count` waiters. */
async function untilWaiting(slots: { waiting(): number }, count: number): Promise<void> {
  while (slots.waiting() !== count) await new Promise((resolve) => setImmediate(resolve));
}

test("cross-job starvation: freed slots go to the job holding fewest, not to the job that queued most", async () => {
  await activeJob("greedy", "token-greedy");
  await activeJob("modest", "token-modest");
  const { slots, addSandbox, close } = await fakePool(2, 10_000);
  await addSandbox();
  try {
    const held = [await slots.acquire("other", { timeoutMs: 1000 }), await slots.acquire("other", { timeoutMs: 1000 })];
    const granted: string[] = [];
    const acquire = (job: string) =>
      client(job, `token-${job}`)
        .call("slots/acquire", {})
        .then(() => void granted.push(job));
    const greedy = [acquire("greedy"), acquire("greedy"), acquire("greedy")];
    await untilWaiting(slots, 3);
    const modest = acquire("modest");
    await untilWaiting(slots, 4);
    for (const lease of held) await slots.release(lease.id);
    await modest;
    assert.deepEqual(granted.sort(), ["greedy", "modest"], "one each, although greedy queued first and thrice");
    assert.equal(slots.waiting(), 2);
    const abandoned = greedy.map((call) => call.catch(() => undefined));
    slots.close(); // the last two greedy acquires end with the pool
    await Promise.all(abandoned);
  } finally {
    close();
  }
});

test("a job cannot queue more acquires than twice what its runners use at once", async () => {
  await activeJob("flood", "token-flood");
  const { slots, addSandbox, close } = await fakePool(1, 10_000);
  await addSandbox();
  try {
    await slots.acquire("other", { timeoutMs: 1000 }); // the only slot: every acquire of the job waits
    const cap = 2 * spec.runners.replicas * spec.runners.trajectoriesPerRunner;
    const queued = Array.from({ length: cap }, () =>
      client("flood", "token-flood")
        .call("slots/acquire", {})
        .catch(() => undefined),
    );
    await untilWaiting(slots, cap);
    await assert.rejects(client("flood", "token-flood").call("slots/acquire", {}), (error: unknown) => {
      return isSandboxError(error, "capacity") && /holds or waits for 8 slots/.test(String(error));
    });
    assert.equal(slots.waiting(), cap, "the refused acquire never queued");
    slots.close();
    await Promise.all(queued);
  } finally {
    close();
  }
});

test("an acquire its client abandons (connection closed) leaves the queue at once, and the slot goes to the next", async () => {
  await activeJob("quitter", "token-quitter");
  const { slots, addSandbox, close } = await fakePool(1, 10_000);
  await addSandbox();
  try {
    const held = await slots.acquire("other", { timeoutMs: 1000 });
    const gaveUp = new AbortController();
    const call = client("quitter", "token-quitter").call("slots/acquire", {}, gaveUp.signal);
    await untilWaiting(slots, 1);
    gaveUp.abort();
    await assert.rejects(call);
    await untilWaiting(slots, 0);
    await slots.release(held.id);
    assert.equal(slots.leasedSlots("sb"), 0, "the freed slot stayed free: nobody holds it for the runner that left");
    assert.equal(jobs.get("ns/quitter")!.slotLeases.size, 0);
  } finally {
    close();
  }
});
