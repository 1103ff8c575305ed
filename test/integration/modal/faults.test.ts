import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import { mockTemplate, startMockModalBackend, type MockModalBackend } from "../../support/modal.ts";
import type { SandboxInfo } from "../../../src/backends/types.ts";
import { LeaseLostError, isSandboxError } from "../../../src/base/errors.ts";

/**
 * Fault injection through the whole stack: slot pool → modal backend → real SDK → mock. Each case says what
 * happened to the lease and to the sandbox.
 */
describe("modal backend under injected faults", () => {
  let env: MockModalBackend;
  let counter = 0;

  before(async () => {
    env = await startMockModalBackend({ backend: { appName: "hermes-faults", maxThrottleWaitSecs: 1 } });
  });
  afterEach(() => env.mock.faults.clear());
  after(() => env.close());

  /** A pool over one fresh sandbox, with one lease held on it. */
  async function leasedSlot() {
    const template = mockTemplate(`faults-${++counter}`, { slots: 1 });
    const pool = new SlotPool({ backend: env.backend, template, leaseTtlMs: 30_000 });
    await pool.start(0);
    const sandbox = await env.backend.create(`${template.pool}-0`, template);
    pool.setSandboxes([sandbox]);
    const lease = await pool.acquire("holder", { timeoutMs: 5000 });
    return { pool, sandbox, lease };
  }

  const isRunning = async (sandbox: SandboxInfo): Promise<boolean> =>
    (await (await env.backend.client.sandboxes.fromId(sandbox.id)).poll()) === null;

  test("an UNAVAILABLE burst on create is retried by the SDK and the sandbox comes up once", async () => {
    env.mock.faults.unavailable(3, "SandboxCreateV2");
    const template = mockTemplate("burst-create", { slots: 1 });
    const sandbox = await env.backend.create("burst-create-0", template);
    const attempts = env.mock.faults.callsTo("SandboxCreateV2");
    assert.equal(attempts.length, 4);
    assert.deepEqual(
      attempts.map((call) => call.retryAttempt ?? "0"),
      ["0", "1", "2", "3"],
    );
    assert.deepEqual(
      (await env.backend.list("burst-create")).map((info) => info.id),
      [sandbox.id],
    );
    assert.ok(await isRunning(sandbox));
    await env.backend.terminate(sandbox);
  });

  test("an UNAVAILABLE burst on the router during a leased exec: retried, the lease and sandbox survive", async () => {
    const { pool, sandbox, lease } = await leasedSlot();
    env.mock.faults.unavailable(3, "TaskExecStart");
    const result = await pool.exec(lease.id, { command: "echo survived", timeoutMs: 10_000 });
    assert.equal(result.stdout, "survived\n");
    assert.equal(env.mock.faults.callsTo("TaskExecStart").filter((call) => call.failedWith !== undefined).length, 3);
    assert.ok((await pool.renew(lease.id)).expiresAt >= lease.expiresAt, "lease still current");
    assert.equal(pool.replacements().size, 0);
    assert.ok(await isRunning(sandbox));
    await pool.release(lease.id);
    pool.close();
    await env.backend.terminate(sandbox);
  });

  test("throttling with an RPCRetryPolicy trailer is honoured: retried after the server's delay", async () => {
    env.mock.faults.throttle(2, 0.3, "SandboxCreateV2");
    const started = Date.now();
    const sandbox = await env.backend.create("throttled-0", mockTemplate("throttled", { slots: 1 }));
    const elapsed = Date.now() - started;
    const attempts = env.mock.faults.callsTo("SandboxCreateV2");
    assert.deepEqual(
      attempts.map((call) => call.throttleAttempt ?? "0"),
      ["0", "1", "2"],
    );
    assert.ok(elapsed >= 550, `waited ${elapsed} ms for two 300 ms retry-after delays`);
    const gap = (attempts[1]?.at ?? 0) - (attempts[0]?.at ?? 0);
    assert.ok(gap >= 280, `second attempt came ${gap} ms after the first`);
    assert.ok(await isRunning(sandbox));
    await env.backend.terminate(sandbox);
  });

  test("throttling longer than maxThrottleWaitSecs fails as capacity, no sandbox and no slot appear", async () => {
    const template = mockTemplate("throttled-long", { slots: 1 });
    const pool = new SlotPool({ backend: env.backend, template, leaseTtlMs: 30_000 });
    await pool.start(0);
    env.mock.faults.throttle(50, 0.4, "SandboxCreateV2");
    const started = Date.now();
    await assert.rejects(env.backend.create("throttled-long-0", template), (error: unknown) => isSandboxError(error, "capacity"));
    assert.ok(Date.now() - started < 5000, "bounded by maxThrottleWaitSecs (1 s), not the 50 throttles");
    env.mock.faults.clear();
    assert.deepEqual(await env.backend.list("throttled-long"), []);
    await assert.rejects(pool.acquire("waiter", { timeoutMs: 200 }));
    assert.equal(pool.stats().slotsTotal, 0);
    pool.close();
  });

  test("a sandbox dying mid-exec: SandboxError gone, the lease is lost and the sandbox marked for replacement", async () => {
    const { pool, sandbox, lease } = await leasedSlot();
    env.mock.faults.dieMidExec(300);
    const started = Date.now();
    await assert.rejects(pool.exec(lease.id, { command: "sleep 20", timeoutMs: 30_000 }), (error: unknown) =>
      isSandboxError(error, "gone"),
    );
    assert.ok(Date.now() - started < 10_000);
    assert.ok(pool.replacements().has(sandbox.name));
    assert.equal(await isRunning(sandbox), false);
    const listed = await env.backend.list(sandbox.pool);
    assert.deepEqual(listed, [], "a dead sandbox is not listed for rebuild");
    pool.setSandboxes(listed); // what the pool manager does on its next reconcile
    await assert.rejects(pool.renew(lease.id), LeaseLostError);
    assert.equal(pool.stats().slotsTotal, 0);
    const health = await env.backend.health(sandbox);
    assert.equal(health.ok, false);
    await env.backend.terminate(sandbox); // idempotent on a dead sandbox
    pool.close();
  });
});
