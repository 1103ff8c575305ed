import assert from "node:assert/strict";
import { test } from "node:test";
import { API_VERSION, type SandboxPool, type SandboxPoolStatus } from "../../../src/api/index.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import { POOL_FINALIZER, poolReconciler } from "../../../src/operator/sandboxpool/reconcile.ts";
import { PoolRuntimes } from "../../../src/operator/sandboxpool/runtimes.ts";
import { Controller } from "../../../src/operator/runtime/controller.ts";
import { ControllerMetrics } from "../../../src/operator/runtime/metrics.ts";
import { fakeBackend, recordingClient, recordingRecorder } from "./fakes.ts";
import { FakeClock } from "../../../src/base/clock.ts";

const now = new Date("2026-01-01T00:00:00Z");
const pool = (name: string, spec: Record<string, unknown>): SandboxPool =>
  ({
    apiVersion: API_VERSION,
    kind: "SandboxPool",
    metadata: { name, namespace: "ns", generation: 1, uid: name, finalizers: [POOL_FINALIZER] },
    spec,
  }) as SandboxPool;

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

test("a slow create does not stall another pool's reconcile on the same single worker", async () => {
  const slow = gate();
  const slowBackend = fakeBackend({ createGate: slow.promise });
  const fastBackend = fakeBackend();
  const pools = {
    "ns/slow": pool("slow", { backend: "local", minSandboxes: 1 }),
    "ns/fast": pool("fast", { backend: "local", minSandboxes: 1 }),
  };
  const runtimes = new PoolRuntimes(
    async ({ key }) => (key === "ns/slow" ? slowBackend.backend : fastBackend.backend),
    new InMemoryLeaseStore(),
  );
  const rec = recordingClient();
  const controller: Controller = new Controller({
    name: "sandboxpool",
    metrics: new ControllerMetrics(),
    workers: 1,
    reconcile: poolReconciler({
      getPool: (ns, name) => pools[`${ns}/${name}` as keyof typeof pools],
      client: rec.client,
      runtimes,
      recorder: recordingRecorder().recorder,
      clock: new FakeClock(now.getTime()),
      suffix: () => "x",
      enqueue: (key) => controller.enqueue(key),
    }),
  });
  controller.enqueue("ns/slow");
  controller.enqueue("ns/fast");
  controller.start();
  const deadline = Date.now() + 5000;
  while (!rec.actions.some((a) => a.target === "SandboxPool/ns/fast") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(
    rec.actions.some((a) => a.verb === "patchStatus" && a.target === "SandboxPool/ns/fast"),
    "the fast pool was reconciled while the slow create hung",
  );
  assert.deepEqual(slowBackend.calls, ["create slow-" + runtimes.get("ns/slow")!.slots.template.templateHash.slice(0, 5) + "-x"]);
  assert.equal(runtimes.get("ns/slow")!.loop.creating, 1);
  slow.open();
  await runtimes.get("ns/slow")!.loop.idle();
  await controller.stop();
  assert.equal(slowBackend.sandboxes.size, 1);
});

test("a create in flight counts for the planner: passes meanwhile start no duplicate, and the cap holds", async () => {
  const slow = gate();
  const fake = fakeBackend({ createGate: slow.promise });
  const p = pool("p", { backend: "local", minSandboxes: 5, maxSandboxes: 5, maxConcurrentCreates: 2 });
  const runtimes = new PoolRuntimes(async () => fake.backend, new InMemoryLeaseStore());
  let n = 0;
  const reconcile = poolReconciler({
    getPool: () => p,
    client: recordingClient().client,
    runtimes,
    recorder: recordingRecorder().recorder,
    clock: new FakeClock(now.getTime()),
    suffix: () => String(n++),
  });
  await reconcile("ns/p");
  await reconcile("ns/p");
  await reconcile("ns/p");
  assert.equal(fake.calls.length, 2, "two creates under maxConcurrentCreates 2, none repeated while in flight");
  slow.open();
  await runtimes.get("ns/p")!.loop.idle();
  await reconcile("ns/p");
  await runtimes.get("ns/p")!.loop.idle();
  assert.equal(fake.calls.length, 4);
  assert.equal(new Set(fake.calls).size, 4);
});

test("a spec change reaches the slot pool: new template hash, slots and lease TTL", async () => {
  const fake = fakeBackend();
  const p = pool("p", { backend: "local", minSandboxes: 1, slotsPerSandbox: 2, leaseTTLSeconds: 60 });
  const runtimes = new PoolRuntimes(async () => fake.backend, new InMemoryLeaseStore());
  const rec = recordingClient();
  const reconcile = poolReconciler({
    getPool: () => p,
    client: rec.client,
    runtimes,
    recorder: recordingRecorder().recorder,
    clock: new FakeClock(now.getTime()),
  });
  await reconcile("ns/p");
  const slots = runtimes.get("ns/p")!.slots;
  const before = slots.template.templateHash;
  assert.equal(slots.leaseTtlMs, 60_000);
  p.spec = { ...p.spec, slotsPerSandbox: 3, leaseTTLSeconds: 120 } as SandboxPool["spec"];
  await reconcile("ns/p");
  assert.equal(runtimes.get("ns/p")!.slots, slots, "the same slot pool: leases survive the change");
  assert.notEqual(slots.template.templateHash, before);
  assert.equal(slots.template.slots, 3);
  assert.equal(slots.leaseTtlMs, 120_000);
  const status = rec.actions.filter((a) => a.verb === "patchStatus").at(-1)!.body as SandboxPoolStatus;
  assert.equal(status.templateHash, slots.template.templateHash);
});
