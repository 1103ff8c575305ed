import { test } from "node:test";
import assert from "node:assert/strict";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import type { ExecRequest, ExecResult, SandboxBackend, SandboxInfo, SandboxRef, SandboxTemplate } from "../../../src/backends/types.ts";
import { LeaseLostError, SandboxError, isSandboxError } from "../../../src/base/errors.ts";
import { FakeClock } from "../../../src/base/clock.ts";

/** A backend that only records calls: the lease state machine is tested without processes. */
class RecordingBackend implements SandboxBackend {
  readonly kind = "local" as const;
  resets: string[] = [];
  failResets = new Set<string>();
  gone = new Set<string>();
  execGate: Promise<void> = Promise.resolve();
  async create(): Promise<SandboxInfo> {
    throw new Error("not used");
  }
  async list(): Promise<SandboxInfo[]> {
    return [];
  }
  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    if (this.gone.has(sandbox.name)) throw new SandboxError("gone", "no such sandbox");
    await this.execGate;
    return { exitCode: 0, stdout: `${sandbox.name}/${request.slot}`, stderr: "", durationMs: 0, timedOut: false, truncated: false };
  }
  async readFile(): Promise<Uint8Array> {
    return new Uint8Array();
  }
  async writeFile(): Promise<void> {}
  async resetSlot(sandbox: SandboxRef, slot: number): Promise<void> {
    this.resets.push(`${sandbox.name}/${slot}`);
    if (this.failResets.has(`${sandbox.name}/${slot}`)) throw new SandboxError("transient", "rm failed");
  }
  async health() {
    return { ok: true, isolation: "none" as const, message: "test" };
  }
  async terminate(): Promise<void> {}
  async close(): Promise<void> {}
}

const template: SandboxTemplate = {
  pool: "p",
  image: "i",
  slots: 2,
  cpu: 1,
  memoryMiB: 1,
  lifetimeSeconds: 0,
  idleTimeoutSeconds: 0,
  templateHash: "v1",
};
const info = (name: string, createdAt = new Date(0), templateHash = "v1"): SandboxInfo => ({
  id: `id-${name}`,
  name,
  pool: "p",
  phase: "ready",
  slots: 2,
  templateHash,
  createdAt,
});
const flush = () => new Promise((resolve) => setImmediate(resolve));

async function setup(options: { store?: InMemoryLeaseStore; sandboxes?: SandboxInfo[]; clock?: FakeClock } = {}) {
  const backend = new RecordingBackend();
  const clock = options.clock ?? new FakeClock(1_000_000);
  const store = options.store ?? new InMemoryLeaseStore();
  if (options.store === undefined) await store.remove("p", "none"); // the store knows the pool: no restart blocking
  const pool = new SlotPool({ backend, template, leaseTtlMs: 1000, store, clock });
  await pool.start(0);
  pool.setSandboxes(options.sandboxes ?? [info("a"), info("b")]);
  return { backend, clock, pool, store };
}

test("acquire hands out distinct slots, then waiters are served first come first served", async () => {
  const { pool } = await setup({ sandboxes: [info("a")] });
  const first = await pool.acquire("h1", { timeoutMs: 1000 });
  const second = await pool.acquire("h2", { timeoutMs: 1000 });
  assert.notEqual(`${first.sandbox.name}/${first.slot}`, `${second.sandbox.name}/${second.slot}`);
  const order: string[] = [];
  const w3 = pool.acquire("h3", { timeoutMs: 5000 }).then((lease) => {
    order.push("h3");
    return lease;
  });
  const w4 = pool.acquire("h4", { timeoutMs: 5000 }).then((lease) => {
    order.push("h4");
    return lease;
  });
  assert.equal(pool.waiting(), 2);
  await pool.release(second.id);
  const third = await w3;
  assert.equal(third.slot, second.slot);
  await pool.release(first.id);
  await w4;
  assert.deepEqual(order, ["h3", "h4"]);
  assert.equal(pool.stats().slotsLeased, 2);
});

test("acquire times out with a capacity error, and an abort signal cancels a wait", async () => {
  const { pool } = await setup({ sandboxes: [] });
  await assert.rejects(pool.acquire("h", { timeoutMs: 20 }), (error: unknown) => isSandboxError(error, "capacity"));
  const controller = new AbortController();
  const waiting = pool.acquire("h", { timeoutMs: 5000, signal: controller.signal });
  controller.abort(new Error("runner stopped"));
  await assert.rejects(waiting, /runner stopped/);
  assert.equal(pool.waiting(), 0);
});

test("a lease that is not renewed expires; the slot is reset and handed out again", async () => {
  const { pool, backend, clock } = await setup({ sandboxes: [info("a")] });
  const lease = await pool.acquire("h", { timeoutMs: 100 });
  clock.advance(600);
  const renewed = await pool.renew(lease.id);
  assert.equal(renewed.expiresAt, clock.now() + 1000);
  clock.advance(900);
  pool.sweep();
  assert.deepEqual(backend.resets, []); // renewed in time
  clock.advance(200);
  pool.sweep();
  await flush();
  assert.deepEqual(backend.resets, [`a/${lease.slot}`]);
  await assert.rejects(pool.renew(lease.id), LeaseLostError);
  await assert.rejects(pool.exec(lease.id, { command: "x", timeoutMs: 1 }), LeaseLostError);
  assert.equal(pool.stats().slotsFree, 2);
  await pool.release(lease.id); // no-op: already gone
  assert.equal(backend.resets.length, 1);
});

test("a call in flight keeps its lease from expiring", async () => {
  const { pool, backend, clock } = await setup({ sandboxes: [info("a")] });
  const lease = await pool.acquire("h", { timeoutMs: 100 });
  let open!: () => void;
  backend.execGate = new Promise((resolve) => {
    open = resolve;
  });
  const running = pool.exec(lease.id, { command: "long", timeoutMs: 60_000 });
  clock.advance(5000);
  pool.sweep();
  await flush();
  assert.equal(pool.stats().slotsLeased, 1);
  open();
  assert.equal((await running).stdout, `a/${lease.slot}`);
  pool.sweep();
  await flush();
  assert.equal(pool.stats().slotsLeased, 0);
});

test("a slot whose reset fails is quarantined and its sandbox is replaced, never handed out", async () => {
  const { pool, backend } = await setup({ sandboxes: [info("a")] });
  const lease = await pool.acquire("h", { timeoutMs: 100 });
  backend.failResets.add(`a/${lease.slot}`);
  await pool.release(lease.id);
  assert.equal(pool.stats().slotsQuarantined, 1);
  assert.ok(pool.replacements().has("a"));
  // The other slot of "a" is clean but its sandbox is on the way out: no one gets it.
  await assert.rejects(pool.acquire("h2", { timeoutMs: 20 }), (error: unknown) => isSandboxError(error, "capacity"));
  pool.setSandboxes([info("c")]);
  const fresh = await pool.acquire("h3", { timeoutMs: 100 });
  assert.equal(fresh.sandbox.name, "c");
  assert.equal(pool.replacements().size, 0);
});

test("an exec that finds the sandbox gone marks it for replacement and surfaces 'gone'", async () => {
  const { pool, backend } = await setup({ sandboxes: [info("a")] });
  const lease = await pool.acquire("h", { timeoutMs: 100 });
  backend.gone.add("a");
  await assert.rejects(pool.exec(lease.id, { command: "x", timeoutMs: 1 }), (error: unknown) => isSandboxError(error, "gone"));
  assert.ok(pool.replacements().has("a"));
  pool.setSandboxes([]);
  await assert.rejects(pool.renew(lease.id), LeaseLostError);
  assert.equal(pool.stats().slotsTotal, 0);
});

test("after a restart with lease records, held slots stay leased and others are free", async () => {
  const store = new InMemoryLeaseStore();
  await store.remove("p", "none"); // the store has known the pool from the start
  const clock = new FakeClock(1_000_000);
  const before = await setup({ store, clock, sandboxes: [info("a")] });
  const held = await before.pool.acquire("survivor", { timeoutMs: 100 });
  before.pool.close();
  const after = await setup({ store, clock, sandboxes: [info("a")] });
  assert.equal(after.pool.stats().slotsLeased, 1);
  const other = await after.pool.acquire("new", { timeoutMs: 100 });
  assert.notEqual(other.slot, held.slot);
  assert.equal((await after.pool.renew(held.id)).holder, "survivor");
});

test("after a restart that knows nothing, old sandboxes' slots are blocked one TTL; a live holder re-adopts", async () => {
  const clock = new FakeClock(1_000_000);
  const before = await setup({ clock, sandboxes: [info("a", new Date(clock.now() - 10_000))] });
  const live = await before.pool.acquire("live", { timeoutMs: 100 });
  before.pool.close();
  const after = await setup({
    clock,
    store: new InMemoryLeaseStore(),
    sandboxes: [info("a", new Date(clock.now() - 10_000)), info("new", new Date(clock.now() + 1))],
  });
  assert.equal(after.pool.stats().slotsBlocked, 2);
  const adopted = await after.pool.renew(live.id);
  assert.equal(adopted.slot, live.slot);
  const fromNew = await after.pool.acquire("x", { timeoutMs: 100 });
  assert.equal(fromNew.sandbox.name, "new"); // blocked slots are not handed out
  clock.advance(600);
  await after.pool.renew(adopted.id);
  await after.pool.renew(fromNew.id);
  clock.advance(500); // past the block (start + TTL), within the renewed leases
  after.pool.sweep();
  await flush();
  assert.deepEqual(after.backend.resets, [`a/${1 - live.slot}`]); // only the unclaimed blocked slot
  assert.equal(after.pool.stats().slotsLeased, 2);
  assert.equal(after.pool.stats().slotsFree, 2);
});

test("free slots of the current template are preferred so stale sandboxes drain", async () => {
  const { pool } = await setup({ sandboxes: [info("old", new Date(0), "v0"), info("cur")] });
  const leases = [await pool.acquire("1", { timeoutMs: 100 }), await pool.acquire("2", { timeoutMs: 100 })];
  assert.deepEqual(
    leases.map((lease) => lease.sandbox.name),
    ["cur", "cur"],
  );
  assert.equal((await pool.acquire("3", { timeoutMs: 100 })).sandbox.name, "old");
});

test("setTemplate: new leases prefer sandboxes on the new template and get the new TTL; current leases keep theirs", async () => {
  const { pool, clock } = await setup({ sandboxes: [info("old")] });
  const before = await pool.acquire("h0", { timeoutMs: 1000 });
  assert.equal(before.expiresAt, clock.now() + 1000);
  pool.setTemplate({ ...template, slots: 3, templateHash: "v2" }, 5000);
  assert.equal(pool.template.templateHash, "v2");
  assert.equal(pool.template.slots, 3);
  assert.equal(pool.leaseTtlMs, 5000);
  pool.setSandboxes([info("old"), info("new", new Date(1), "v2")]);
  const onNew = await pool.acquire("h1", { timeoutMs: 1000 });
  const alsoNew = await pool.acquire("h2", { timeoutMs: 1000 });
  assert.deepEqual([onNew.sandbox.name, alsoNew.sandbox.name], ["new", "new"]);
  assert.equal(onNew.expiresAt, clock.now() + 5000);
  const stale = await pool.acquire("h3", { timeoutMs: 1000 }); // the new sandbox is full: the old one still serves
  assert.equal(stale.sandbox.name, "old");
  const renewed = await pool.renew(before.id);
  assert.equal(renewed.expiresAt, clock.now() + 5000);
  assert.throws(() => pool.setTemplate({ ...template, pool: "other" }, 1000), /pool other/);
});

test("a renew during a call does not keep the lease alive after the call ends", async () => {
  const { pool, backend, clock } = await setup({ sandboxes: [info("a")] });
  const lease = await pool.acquire("h", { timeoutMs: 100 });
  let open!: () => void;
  backend.execGate = new Promise((resolve) => {
    open = resolve;
  });
  const running = pool.exec(lease.id, { command: "long", timeoutMs: 60_000 });
  await pool.renew(lease.id); // the holder's background renewal while its command runs
  open();
  await running;
  clock.advance(2000); // the holder died: no more renewals
  pool.sweep();
  await flush();
  assert.deepEqual(backend.resets, [`a/${lease.slot}`]);
  assert.equal(pool.stats().slotsLeased, 0);
});

test("a slot released while its call still runs is handed out only after the call ended and a reset followed", async () => {
  const { pool, backend } = await setup({ sandboxes: [info("a")] });
  const lease = await pool.acquire("h", { timeoutMs: 100 });
  await pool.acquire("other", { timeoutMs: 100 });
  let open!: () => void;
  backend.execGate = new Promise((resolve) => {
    open = resolve;
  });
  const running = pool.exec(lease.id, { command: "long", timeoutMs: 60_000 });
  const released = pool.release(lease.id);
  const next = pool.acquire("next", { timeoutMs: 5000 });
  await flush();
  assert.equal(pool.waiting(), 1); // not while the released holder's command may still write
  open();
  await running;
  const resetsWhenCallEnded = backend.resets.length;
  await released;
  assert.equal((await next).slot, lease.slot);
  assert.ok(backend.resets.length > resetsWhenCallEnded, "no reset after the call ended");
});

test("a sandbox that is briefly not ready keeps its leases and hands out none of its slots meanwhile", async () => {
  const { pool } = await setup({ sandboxes: [info("a")] });
  const held = await pool.acquire("h", { timeoutMs: 100 });
  pool.setSandboxes([{ ...info("a"), phase: "starting" }]); // e.g. one failed health probe
  await assert.rejects(pool.acquire("h2", { timeoutMs: 20 }), (error: unknown) => isSandboxError(error, "capacity"));
  pool.setSandboxes([info("a")]);
  assert.equal((await pool.renew(held.id)).slot, held.slot);
  const other = await pool.acquire("h3", { timeoutMs: 100 });
  assert.notEqual(other.slot, held.slot); // never the held, dirty workspace
  assert.equal(pool.stats().slotsLeased, 2);
});

test("a slot whose reset failed is not free after a restart with lease records; it is reset first", async () => {
  const store = new InMemoryLeaseStore();
  await store.remove("p", "none");
  const clock = new FakeClock(1_000_000);
  const before = await setup({ store, clock, sandboxes: [info("a")] });
  const lease = await before.pool.acquire("h", { timeoutMs: 100 });
  before.backend.failResets.add(`a/${lease.slot}`);
  await before.pool.release(lease.id);
  before.pool.close(); // e.g. the controller restarts before the sandbox is replaced
  const after = await setup({ store, clock, sandboxes: [info("a")] });
  assert.equal(after.pool.stats().slotsFree, 1);
  clock.advance(1000);
  after.pool.sweep();
  await flush();
  assert.deepEqual(after.backend.resets, [`a/${lease.slot}`]);
  assert.equal(after.pool.stats().slotsFree, 2);
  assert.deepEqual(await store.load("p"), []);
});
