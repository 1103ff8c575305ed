import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import { ModalBackend } from "../../../src/backends/modal/backend.ts";
import { startMockModal } from "../../../src/testbeds/mock-modal/server.ts";
import { mockTemplate, startMockModalBackend, withModalServerUrl, type MockModalBackend } from "../../support/modal.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { modalBackendFromSpec } from "../../../src/backends/factory.ts";

// Modal-specific backend behaviour beyond the shared contract: lifetimes, the create cap, rebuild after a restart.
describe("modal backend specifics", () => {
  let env: MockModalBackend;

  before(async () => {
    env = await startMockModalBackend({ backend: { appName: "hermes-specifics", maxConcurrentCreates: 2 } });
  });
  after(() => env.close());

  test("every sandbox gets the template's lifetime and idle timeout, and its slot dirs at create", async () => {
    const template = mockTemplate("lifetimes", { lifetimeSeconds: 1234, idleTimeoutSeconds: 321, slots: 3 });
    const info = await env.backend.create("lifetimes-0", template);
    const mockSandbox = env.mock.state.sandbox(info.id);
    assert.equal(mockSandbox.spec.timeoutSecs, 1234);
    assert.equal(mockSandbox.spec.idleTimeoutSecs, 321);
    const dirs = await env.backend.exec(info, { slot: 2, command: "ls -d /workspace && echo $HERMES_CACHE_DIR", timeoutMs: 10_000 });
    assert.equal(dirs.exitCode, 0, dirs.stderr);
    await env.backend.terminate(info);
  });

  test("a command that ignores SIGTERM and overruns its timeout still reports 124 and timedOut", async () => {
    // Without bwrap (the usual case in a real Modal sandbox) `timeout` has to SIGKILL such a command.
    const unisolated = new ModalBackend({ ...env.connection, appName: "hermes-specifics", isolation: { mode: "none", network: "host" } });
    try {
      const info = await unisolated.create("sigterm-0", mockTemplate("sigterm", { slots: 1 }));
      const result = await unisolated.exec(info, { slot: 0, command: "trap '' TERM; sleep 30", timeoutMs: 1_000 });
      assert.deepEqual([result.exitCode, result.timedOut], [124, true]);
      await unisolated.terminate(info);
    } finally {
      await unisolated.close();
    }
  });

  test("the pool's regions reach Modal's create request", async () => {
    const placed = new ModalBackend({ ...env.connection, appName: "hermes-specifics", regions: ["us-east", "eu-west"] });
    try {
      const info = await placed.create("regions-0", mockTemplate("regions"));
      assert.deepEqual(env.mock.state.sandbox(info.id).spec.regions, ["us-east", "eu-west"]);
      const unplaced = await env.backend.create("regions-1", mockTemplate("regions"));
      assert.deepEqual(env.mock.state.sandbox(unplaced.id).spec.regions, [], "no regions: Modal picks");
      await Promise.all([placed.terminate(info), env.backend.terminate(unplaced)]);
    } finally {
      await placed.close();
    }
  });

  test("a pool's serverURL points that pool's backend only; a pool without one keeps the process's MODAL_SERVER_URL", async () => {
    const other = await startMockModal();
    const spec = (modal: Record<string, unknown>) => {
      const result = validateSandboxPoolSpec({ backend: "modal", modal: { appName: "hermes-specifics", ...modal } });
      assert.ok(result.ok, JSON.stringify(result));
      return result.value;
    };
    const { tokenId, tokenSecret } = env.connection;
    const { pointed, defaulted } = await withModalServerUrl(env.mock.url, async () => ({
      pointed: await modalBackendFromSpec(spec({ serverURL: other.url }), { tokenId, tokenSecret }),
      defaulted: await modalBackendFromSpec(spec({}), { tokenId, tokenSecret }),
    }));
    try {
      const there = await pointed.create("pointed-0", mockTemplate("pointed", { slots: 1 }));
      const here = await defaulted.create("defaulted-0", mockTemplate("defaulted", { slots: 1 }));
      assert.ok(other.state.sandboxes.has(there.id));
      assert.ok(env.mock.state.sandboxes.has(here.id), "created on the default server, not the other pool's");
      await Promise.all([pointed.terminate(there), defaulted.terminate(here)]);
    } finally {
      await Promise.all([pointed.close(), defaulted.close()]);
      await other.close();
    }
  });

  test("at most maxConcurrentCreates creates are in flight", async () => {
    const sandboxes = env.backend.client.sandboxes;
    const original = sandboxes.create.bind(sandboxes);
    let inFlight = 0;
    let peak = 0;
    sandboxes.create = async (...args: Parameters<typeof original>) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      try {
        await sleep(50);
        return await original(...args);
      } finally {
        inFlight--;
      }
    };
    try {
      const template = mockTemplate("capped", { slots: 1 });
      const created = await Promise.all(Array.from({ length: 6 }, (_, index) => env.backend.create(`capped-${index}`, template)));
      assert.equal(new Set(created.map((info) => info.id)).size, 6);
      assert.equal(peak, 2);
      await Promise.all(created.map((info) => env.backend.terminate(info)));
    } finally {
      sandboxes.create = original;
    }
  });

  test("after a restart a new backend instance rebuilds the pool by tags and re-creates idempotently", async () => {
    const template = mockTemplate("restart", { slots: 2, templateHash: "h-restart" });
    const first = await env.backend.create("restart-0", template);
    await env.backend.writeFile(first, 1, "state.txt", "kept");
    const restarted = new ModalBackend({ ...env.connection, appName: "hermes-specifics" });
    try {
      const listed = await restarted.list("restart");
      assert.deepEqual(
        listed.map((info) => [info.id, info.name, info.slots, info.templateHash]),
        [[first.id, "restart-0", 2, "h-restart"]],
      );
      const again = await restarted.create("restart-0", template);
      assert.equal(again.id, first.id);
      assert.equal(Buffer.from(await restarted.readFile(again, 1, "state.txt")).toString(), "kept");
    } finally {
      await restarted.close();
    }
    await env.backend.terminate(first);
    assert.deepEqual(await env.backend.list("restart"), []);
  });

  test("a running sandbox of that name that we do not manage is a configuration error, not adopted", async () => {
    const app = await env.backend.client.apps.fromName("hermes-specifics");
    const foreign = await env.backend.client.sandboxes.create(app, env.backend.client.images.fromRegistry("x"), {
      name: "foreign-0",
      timeoutMs: 60_000,
    });
    await assert.rejects(env.backend.create("foreign-0", mockTemplate("foreign")), (error: unknown) =>
      isSandboxError(error, "configuration"),
    );
    await foreign.terminate();
  });

  test("an invalid name is rejected before any RPC", async () => {
    const calls = env.mock.faults.calls.length;
    await assert.rejects(env.backend.create("ns/pool-0", mockTemplate("bad")), (error: unknown) => isSandboxError(error, "configuration"));
    assert.equal(env.mock.faults.calls.length, calls);
  });
});
