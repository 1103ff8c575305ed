import assert from "node:assert/strict";
import { test } from "node:test";
import { API_VERSION, type SandboxPool } from "../../../src/api/index.ts";
import type { SandboxPoolStatus } from "../../../src/api/index.ts";
import { POOL_FINALIZER, poolReconciler } from "../../../src/operator/sandboxpool/reconcile.ts";
import { PoolRuntimes } from "../../../src/operator/sandboxpool/runtimes.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import { fakeBackend, recordingClient, recordingRecorder } from "./fakes.ts";
import { FakeClock } from "../../../src/base/clock.ts";
import { describeError, SandboxError } from "../../../src/base/errors.ts";

const now = new Date("2026-01-01T00:00:00Z");

function setup(pool: SandboxPool, backendOptions: Parameters<typeof fakeBackend>[0] = {}) {
  const fake = fakeBackend(backendOptions);
  const rec = recordingClient();
  const events = recordingRecorder();
  const runtimes = new PoolRuntimes(async () => fake.backend, new InMemoryLeaseStore());
  let n = 0;
  const enqueued: string[] = [];
  const reconcile = poolReconciler({
    getPool: () => pool,
    client: rec.client,
    runtimes,
    recorder: events.recorder,
    clock: new FakeClock(now.getTime()),
    suffix: () => String(n++),
    enqueue: (key) => void enqueued.push(key),
  });
  /** Waits for the creates a pass started in the background. */
  const settle = () => runtimes.get("ns/p")!.loop.idle();
  return { fake, rec, events, runtimes, reconcile, settle, enqueued };
}

const pool = (spec: Record<string, unknown>, meta: Partial<SandboxPool["metadata"]> = {}): SandboxPool =>
  ({
    apiVersion: API_VERSION,
    kind: "SandboxPool",
    metadata: { name: "p", namespace: "ns", generation: 2, uid: "u", ...meta },
    spec,
  }) as SandboxPool;

test("an invalid spec gets Ready=False InvalidSpec naming the field, and nothing else is written", async () => {
  const { rec, fake, reconcile } = setup(pool({ backend: "local", minSandboxes: 5, maxSandboxes: 2 }));
  await reconcile("ns/p");
  const [write] = rec.expect(["patchStatus SandboxPool/ns/p"]);
  const ready = (write!.body as SandboxPoolStatus).conditions!.find((c) => c.type === "Ready")!;
  assert.equal(ready.status, "False");
  assert.equal(ready.reason, "InvalidSpec");
  assert.match(ready.message, /spec\.minSandboxes/);
  assert.deepEqual(fake.calls, []);
});

test("a new pool gets its finalizer first, then minSandboxes, then a Ready status with counts", async () => {
  const { rec, fake, events, reconcile, settle, enqueued } = setup(
    pool({ backend: "local", minSandboxes: 2, maxSandboxes: 3, slotsPerSandbox: 4 }),
  );
  const first = await reconcile("ns/p");
  const [fin, starting] = rec.expect(["setFinalizers SandboxPool/ns/p", "patchStatus SandboxPool/ns/p"]);
  assert.deepEqual(fin!.body, [POOL_FINALIZER]);
  assert.equal((starting!.body as SandboxPoolStatus).conditions!.find((c) => c.type === "Ready")!.status, "False");
  assert.equal(first.requeueAfterMs, 1000, "creates in flight: observe them soon");
  await settle();
  assert.deepEqual(enqueued, ["ns/p", "ns/p"], "each finished create requeues the pool");
  const result = await reconcile("ns/p");
  const [, status] = rec.expect(["setFinalizers SandboxPool/ns/p", "patchStatus SandboxPool/ns/p"]); // the test's pool object never gets it

  assert.equal(fake.calls.filter((c) => c.startsWith("create")).length, 2);
  const s = status!.body as SandboxPoolStatus;
  assert.deepEqual(s.sandboxes, { ready: 2, starting: 0, failed: 0, images: 1 });
  assert.deepEqual(s.slots, { total: 8, leased: 0, free: 8, quarantined: 0 });
  assert.equal(s.observedGeneration, 2);
  assert.equal(s.conditions!.find((c) => c.type === "Ready")!.status, "True");
  assert.equal(s.isolation, "bwrap");
  assert.equal(events.events.filter((e) => e.startsWith("Normal SandboxCreated")).length, 2);
  assert.ok(result.requeueAfterMs! > 0);
});

test("a second pass over an unchanged pool writes nothing (idempotent)", async () => {
  const p = pool({ backend: "local", minSandboxes: 1 }, { finalizers: [POOL_FINALIZER] });
  const { rec, fake, reconcile, settle } = setup(p);
  await reconcile("ns/p");
  await settle();
  rec.expect(["patchStatus SandboxPool/ns/p"]);
  await reconcile("ns/p");
  const [status] = rec.expect(["patchStatus SandboxPool/ns/p"]);
  p.status = status!.body as SandboxPoolStatus;
  await reconcile("ns/p");
  rec.expect([]);
  assert.equal(fake.calls.filter((c) => c.startsWith("create")).length, 1);
});

test("create failures surface as Ready=False BackendError and a Warning event", async () => {
  const { rec, events, reconcile, settle } = setup(pool({ backend: "local" }, { finalizers: [POOL_FINALIZER] }), {
    failCreate: "quota exceeded",
  });
  await reconcile("ns/p");
  await settle();
  rec.expect(["patchStatus SandboxPool/ns/p"]);
  await reconcile("ns/p");
  const [status] = rec.expect(["patchStatus SandboxPool/ns/p"]);
  const conds = (status!.body as SandboxPoolStatus).conditions!;
  assert.equal(conds.find((c) => c.type === "Ready")!.reason, "BackendError");
  assert.match(conds.find((c) => c.type === "Degraded")!.message, /quota exceeded/);
  assert.ok(events.events.some((e) => e.startsWith("Warning CreateFailed")));
});

test("a deleted pool terminates every sandbox, then drops its finalizer", async () => {
  const p = pool({ backend: "local", minSandboxes: 2 }, { finalizers: ["other", POOL_FINALIZER] });
  const { rec, fake, reconcile, settle } = setup(p);
  await reconcile("ns/p");
  await settle();
  rec.expect(["patchStatus SandboxPool/ns/p"]);
  assert.equal(fake.sandboxes.size, 2);
  p.metadata.deletionTimestamp = now.toISOString();
  await reconcile("ns/p");
  const [fin] = rec.expect(["setFinalizers SandboxPool/ns/p"]);
  assert.deepEqual(fin!.body, ["other"]);
  assert.equal(fake.sandboxes.size, 0);
});

test("a scale-to-zero pool with no demand is Ready, so a job can start on it and its runners' demand scales it up", async () => {
  const { rec, fake, reconcile } = setup(pool({ backend: "local", minSandboxes: 0 }, { finalizers: [POOL_FINALIZER] }));
  await reconcile("ns/p");
  const [write] = rec.expect(["patchStatus SandboxPool/ns/p"]);
  const s = write!.body as SandboxPoolStatus;
  assert.deepEqual(fake.calls, [], "nothing to create without demand");
  assert.deepEqual(s.sandboxes, { ready: 0, starting: 0, failed: 0, images: 0 });
  const ready = s.conditions!.find((c) => c.type === "Ready")!;
  assert.deepEqual([ready.status, ready.reason], ["True", "SandboxesReady"]);
});

const condition = (status: SandboxPoolStatus, type: string) => status.conditions!.find((c) => c.type === type)!;

test("fail closed: a bwrap pool whose backend cannot isolate is not Ready, says why in Isolated, and records it once", async () => {
  const p = pool({ backend: "local", minSandboxes: 1 }, { finalizers: [POOL_FINALIZER] });
  const rec = recordingClient();
  const events = recordingRecorder();
  const probeFailed = new SandboxError("configuration", "bubblewrap unavailable, slots cannot be isolated: bwrap: No permissions");
  const runtimes = new PoolRuntimes(() => Promise.reject(probeFailed), new InMemoryLeaseStore());
  const reconcile = poolReconciler({ getPool: () => p, client: rec.client, runtimes, recorder: events.recorder, clock: new FakeClock(0) });
  await reconcile("ns/p");
  const [write] = rec.expect(["patchStatus SandboxPool/ns/p"]);
  const status = write!.body as SandboxPoolStatus;
  assert.deepEqual(
    [condition(status, "Ready").status, condition(status, "Ready").reason, condition(status, "Isolated").reason],
    ["False", "IsolationUnavailable", "ProbeFailed"],
  );
  assert.match(condition(status, "Isolated").message, /No permissions/);
  assert.equal(status.isolation, undefined, "never reported as running unisolated");
  assert.deepEqual(events.events, [`Warning IsolationUnavailable: ${describeError(probeFailed)}`]);
});

test("a bwrap pool whose isolation cannot start is still deleted: teardown runs no slot command", async () => {
  const p = pool({ backend: "local", minSandboxes: 1 }, { finalizers: [POOL_FINALIZER], deletionTimestamp: now.toISOString() });
  const rec = recordingClient();
  const fake = fakeBackend();
  const probeFailed = new SandboxError("configuration", "bubblewrap unavailable, slots cannot be isolated: bwrap: No permissions");
  const factory = async (_pool: unknown, spec: { isolation?: { mode?: string } }) =>
    spec.isolation?.mode === "none" ? fake.backend : Promise.reject(probeFailed);
  const runtimes = new PoolRuntimes(factory, new InMemoryLeaseStore());
  const reconcile = poolReconciler({
    getPool: () => p,
    client: rec.client,
    runtimes,
    recorder: recordingRecorder().recorder,
    clock: new FakeClock(0),
  });
  await reconcile("ns/p");
  const [fin] = rec.expect(["setFinalizers SandboxPool/ns/p"]);
  assert.deepEqual(fin!.body, []);
});

test("fail closed: a sandbox that reports no isolation under bwrap makes the pool not Ready", async () => {
  const health = { ok: true, isolation: "none" as const, message: "old server fell back" };
  const { rec, reconcile, settle } = setup(pool({ backend: "nomad", nomad: { address: "http://n" }, minSandboxes: 1 }), { health });
  await reconcile("ns/p");
  await settle();
  await reconcile("ns/p");
  const status = rec.actions.filter((a) => a.verb === "patchStatus").at(-1)!.body as SandboxPoolStatus;
  assert.deepEqual([condition(status, "Ready").status, condition(status, "Ready").reason], ["False", "IsolationUnavailable"]);
  assert.match(condition(status, "Isolated").message, /old server fell back/);
});

test("isolation none, asked for in the spec, shows as Isolated=False DisabledBySpec with an Event; the pool is Ready", async () => {
  const health = { ok: true, isolation: "none" as const, message: "slot isolation disabled by configuration" };
  const spec = { backend: "local", minSandboxes: 1, isolation: { mode: "none" } };
  const p = pool(spec);
  const { rec, events, reconcile, settle } = setup(p, { health });
  await reconcile("ns/p");
  await settle();
  p.status = rec.actions.filter((a) => a.verb === "patchStatus").at(-1)!.body as SandboxPoolStatus; // as the informer would
  await reconcile("ns/p");
  const status = rec.actions.filter((a) => a.verb === "patchStatus").at(-1)!.body as SandboxPoolStatus;
  assert.equal(condition(status, "Ready").status, "True");
  assert.deepEqual([condition(status, "Isolated").status, condition(status, "Isolated").reason], ["False", "DisabledBySpec"]);
  assert.equal(events.events.filter((e) => e.startsWith("Warning IsolationDisabled")).length, 1);
});
