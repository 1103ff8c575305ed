import { test } from "node:test";
import assert from "node:assert/strict";
import { PoolLoop, type PoolLoopOptions, type PoolStepHooks } from "../../../src/backends/slots/loop.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";

const template: SandboxTemplate = {
  pool: "p",
  image: "i",
  slots: 1,
  cpu: 1,
  memoryMiB: 1,
  lifetimeSeconds: 0,
  idleTimeoutSeconds: 0,
  templateHash: "v1",
};

const ready = (name: string): SandboxInfo => ({
  id: name,
  name,
  pool: "p",
  phase: "ready",
  slots: 1,
  templateHash: "v1",
  createdAt: new Date(0),
});

/** An in-memory backend; `fail` makes creates or terminates throw, `createGate` holds creates until it resolves. */
function fakeBackend(options: { fail?: { create?: string; terminate?: string }; createGate?: Promise<void> } = {}) {
  const sandboxes = new Map<string, SandboxInfo>();
  const calls: string[] = [];
  const unused = async (): Promise<never> => {
    throw new Error("not used");
  };
  const backend: SandboxBackend = {
    kind: "local",
    async create(name) {
      calls.push(`create ${name}`);
      await options.createGate;
      if (options.fail?.create) throw new Error(options.fail.create);
      sandboxes.set(name, ready(name));
      return ready(name);
    },
    list: async () => [...sandboxes.values()],
    exec: unused,
    readFile: unused,
    writeFile: unused,
    resetSlot: unused,
    health: async () => ({ ok: true, isolation: "bwrap" }),
    async terminate(sandbox) {
      calls.push(`terminate ${sandbox.name}`);
      if (options.fail?.terminate) throw new Error(options.fail.terminate);
      sandboxes.delete(sandbox.name);
    },
    close: async () => undefined,
  };
  return { backend, sandboxes, calls };
}

async function loopOver(backend: SandboxBackend, options: Partial<PoolLoopOptions> = {}) {
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 1000 });
  await slotPool.start(0);
  return new PoolLoop({ backend, slotPool, scaleDownDelayMs: 0, ...options });
}

/** Hooks that record what the loop reports, naming sandboxes s0, s1, … */
function recordingHooks() {
  const heard: string[] = [];
  let n = 0;
  const hooks: PoolStepHooks = {
    sandboxName: (t) => `${t.pool}-s${n++}`,
    terminated: (sandbox, reason) => void heard.push(`terminated ${sandbox.name} ${reason}`),
    created: (info) => void heard.push(`created ${info.name}`),
    createFailed: (name, message) => void heard.push(`failed ${name}: ${message}`),
    createSettled: () => void heard.push("settled"),
  };
  return { hooks, heard };
}

const bounds = { min: 2, max: 3, maxConcurrentCreates: 4 };

test("a step creates up to min in the background, names them through the hook, and counts them until listed", async () => {
  let open!: () => void;
  const fake = fakeBackend({ createGate: new Promise<void>((resolve) => (open = resolve)) });
  const loop = await loopOver(fake.backend);
  const { hooks, heard } = recordingHooks();
  const first = await loop.step({ ...bounds, now: 0 }, hooks);
  assert.equal(first.plan.create, 2);
  assert.equal(loop.creating, 2);
  await loop.step({ ...bounds, now: 1 }, hooks);
  assert.deepEqual(fake.calls, ["create p-s0", "create p-s1"], "no second create while the first two are in flight");
  open();
  await loop.idle();
  assert.deepEqual(heard, ["created p-s0", "created p-s1", "settled", "settled"]);
  const settled = await loop.step({ ...bounds, now: 2 }, hooks);
  assert.deepEqual(
    settled.sandboxes.map((s) => s.name),
    ["p-s0", "p-s1"],
  );
  assert.equal(settled.plan.create, 0);
});

test("idle surplus goes only once the scale-down delay has passed without a waiter", async () => {
  const fake = fakeBackend();
  for (const name of ["a", "b"]) fake.sandboxes.set(name, ready(name));
  const loop = await loopOver(fake.backend, { scaleDownDelayMs: 60_000 });
  const { hooks, heard } = recordingHooks();
  const none = { min: 0, max: 2, maxConcurrentCreates: 4 };
  assert.deepEqual((await loop.step({ ...none, now: 1_000 }, hooks)).plan.terminate, []);
  assert.deepEqual((await loop.step({ ...none, now: 60_999 }, hooks)).plan.terminate, []);
  const late = await loop.step({ ...none, now: 61_000 }, hooks);
  assert.deepEqual(late.sandboxes, [], "what the step terminated is no longer in its view");
  assert.deepEqual(heard, ["terminated a surplus", "terminated b surplus"]);
  assert.equal(loop.observed.length, 0);
});

test("a failed terminate is logged and the step goes on, unless the loop halts on it (then nothing is created)", async () => {
  for (const halt of [false, true]) {
    const fake = fakeBackend({ fail: { terminate: "denied" } });
    fake.sandboxes.set("broken", { ...ready("broken"), phase: "failed" });
    const loop = await loopOver(fake.backend, { haltOnTerminateFailure: halt });
    const step = await loop.step({ ...bounds, now: 0 }, recordingHooks().hooks);
    await loop.idle();
    const creates = fake.calls.filter((call) => call.startsWith("create")).length;
    if (halt) {
      assert.match(String(step.halted), /denied/);
      assert.deepEqual(
        step.sandboxes.map((s) => s.name),
        ["broken"],
      );
      assert.equal(creates, 0);
    } else {
      assert.equal(step.halted, undefined);
      assert.equal(creates, 2);
    }
  }
});

test("a failed create is reported to the hook and kept as createError until a create succeeds", async () => {
  const failing: { create?: string } = { create: "quota exceeded" };
  const fake = fakeBackend({ fail: failing });
  const loop = await loopOver(fake.backend);
  const { hooks, heard } = recordingHooks();
  await loop.step({ ...bounds, min: 1, now: 0 }, hooks);
  await loop.idle();
  assert.deepEqual(heard, ["failed p-s0: create failed: quota exceeded", "settled"]);
  assert.equal(loop.createError, "create failed: quota exceeded");
  delete failing.create;
  // The next step starts the backoff (at most 1 s) and creates nothing; one past it creates again.
  await loop.step({ ...bounds, min: 1, now: 1 }, hooks);
  assert.equal(loop.creating, 0);
  assert.match(loop.createError ?? "", /^create failed: quota exceeded \(creates back off 1 s\)$/);
  await loop.step({ ...bounds, min: 1, now: 1_001 }, hooks);
  await loop.idle();
  assert.equal(loop.createError, undefined);
});

/** Steps the loop every `everyMs` of simulated time (a create's settle hook or a requeue), waiting for its creates. */
async function stepFor(loop: PoolLoop, hooks: PoolStepHooks, durationMs: number, everyMs: number, start = 0): Promise<number> {
  let now = start;
  for (; now < start + durationMs; now += everyMs) {
    await loop.step({ ...bounds, now }, hooks);
    await loop.idle();
  }
  return now;
}

test("a backend that refuses every create is asked less and less often: doubling waits, capped at 60 s", async () => {
  const fake = fakeBackend({ fail: { create: "refused" } });
  // Jitter pinned to its lowest (half the wait): the most creates the backoff allows.
  const loop = await loopOver(fake.backend, { random: () => 0 });
  const createdAt: number[] = [];
  const backend = fake.backend.create.bind(fake.backend);
  let now = 0;
  fake.backend.create = (name, t) => (createdAt.push(now), backend(name, t));
  for (; now < 600_000; now += 100) {
    await loop.step({ ...bounds, now }, recordingHooks().hooks);
    await loop.idle();
  }
  const gaps = createdAt.slice(1).map((at, index) => at - (createdAt[index] ?? 0));
  // The first step starts min (2) creates at once; after that one at a time, each wait twice the last, up to 30-60 s.
  assert.deepEqual(gaps.slice(0, 8), [0, 600, 1_100, 2_100, 4_100, 8_100, 16_100, 30_100]);
  assert.ok(
    gaps.slice(8).every((gap) => gap >= 30_000 && gap <= 60_100),
    `gaps past the cap: ${gaps.slice(8).join(", ")}`,
  );
  assert.ok(createdAt.length <= 26, `${createdAt.length} creates in 10 min`);
  assert.match(loop.createError ?? "", /^create failed: refused \(creates back off 30 s\)$/);
});

test("with real jitter, a refusing backend sees at most a few creates per second, and a success resets the backoff", async () => {
  const failing: { create?: string } = { create: "refused" };
  const fake = fakeBackend({ fail: failing });
  const loop = await loopOver(fake.backend);
  const { hooks } = recordingHooks();
  const end = await stepFor(loop, hooks, 60_000, 50);
  const creates = fake.calls.length;
  assert.ok(creates <= 12, `${creates} creates in 60 s`);
  assert.ok(creates >= 6, `${creates} creates in 60 s: the pool stopped trying`);
  delete failing.create;
  const healed = await stepFor(loop, hooks, 70_000, 1_000, end);
  assert.equal(loop.createError, undefined);
  assert.equal(fake.sandboxes.size, 2, "created up to min once the backend took creates again");
  // Reset: the pool creates at full width again.
  failing.create = "refused";
  fake.sandboxes.clear();
  const before = fake.calls.length;
  await stepFor(loop, hooks, 1, 1, healed);
  assert.equal(fake.calls.length - before, 2, "both creates went out at once");
});

test("terminateAll ends every live sandbox and returns what failed instead of stopping at it", async () => {
  const fake = fakeBackend({ fail: { terminate: "denied" } });
  for (const name of ["a", "b"]) fake.sandboxes.set(name, ready(name));
  fake.sandboxes.set("gone", { ...ready("gone"), phase: "terminated" });
  const loop = await loopOver(fake.backend);
  const { terminated, failures } = await loop.terminateAll();
  assert.equal(terminated, 2);
  assert.equal(failures.length, 2);
  assert.deepEqual(fake.calls, ["terminate a", "terminate b"], "the terminated one is left alone");
});
