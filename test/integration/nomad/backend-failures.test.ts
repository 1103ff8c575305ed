import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { NomadBackend, type NomadBackendOptions } from "../../../src/backends/nomad/backend.ts";
import { startFakeNomad, type FakeNomadOptions } from "../../../src/testbeds/fake-nomad/server.ts";
import { PoolLoop } from "../../../src/backends/slots/loop.ts";
import { PoolManager } from "../../../src/backends/slots/manager.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { isSandboxError } from "../../../src/base/errors.ts";

// The nomad backend against the fake Nomad where real Nomad is slow or refuses: failures must be seen within
// seconds (not after the ready timeout), and a terminate must hold while Nomad's stop is still in flight.

const template = (pool: string, image = "host"): SandboxTemplate => ({
  pool,
  image,
  slots: 1,
  cpu: 0.5,
  memoryMiB: 256,
  lifetimeSeconds: 600,
  idleTimeoutSeconds: 0,
  templateHash: "v1",
});

async function withBackend(
  fakeOptions: FakeNomadOptions,
  backendOptions: NomadBackendOptions,
  run: (backend: NomadBackend) => Promise<void>,
): Promise<void> {
  const fake = await startFakeNomad(fakeOptions);
  const backend = new NomadBackend({ address: fake.url, env: {}, readyTimeoutMs: 60_000, ...backendOptions });
  try {
    await run(backend);
  } finally {
    await backend.close();
    await fake.close();
  }
}

test("a driver no node has: create fails within seconds naming the evaluation's FailedTGAllocs", async () => {
  await withBackend({}, { driver: "docker", serverImage: "ghcr.io/x/hermes:1" }, async (backend) => {
    const started = Date.now();
    await assert.rejects(
      backend.create("nodocker", template("it/nodocker", "ghcr.io/x/hermes:1")),
      (e: unknown) =>
        isSandboxError(e, "configuration") && /failed: evaluation \w+ FailedTGAllocs: .*missing drivers \(1\)/.test(e.message),
    );
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    assert.deepEqual(
      (await backend.list("it/nodocker")).map((s) => s.phase),
      ["failed"],
      "listed failed, so the pool replaces it",
    );
  });
});

test("a command the driver cannot start: create fails within seconds naming the Driver Failure event", async () => {
  await withBackend({}, { launcher: ["/nonexistent/node"] }, async (backend) => {
    const started = Date.now();
    await assert.rejects(
      backend.create("nocommand", template("it/nocommand")),
      (e: unknown) => isSandboxError(e, "configuration") && /Driver Failure: failed to launch command/.test(e.message),
    );
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
  });
});

/** Steps a pool of one sandbox until its create fails; the message is what the pool's conditions show. */
async function poolCreateError(backend: NomadBackend, template: SandboxTemplate): Promise<string> {
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 30_000, resetTimeoutMs: 5_000 });
  const loop = new PoolLoop({ backend, slotPool, scaleDownDelayMs: 0 });
  let names = 0;
  const hooks = { sandboxName: () => `sb-${names++}`, createSettled: () => undefined };
  const deadline = Date.now() + 30_000;
  while (loop.createError === undefined) {
    assert.ok(Date.now() < deadline, "no create failure within 30 s");
    await loop.step({ min: 1, max: 1, maxConcurrentCreates: 1, now: Date.now() }, hooks);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const info of await backend.list(template.pool)) await backend.terminate(info);
  return loop.createError;
}

test("a pool on a missing driver, or on a server that exits at once: the create failure names the Nomad event", async () => {
  await withBackend({}, { driver: "docker", serverImage: "ghcr.io/x/hermes:1" }, async (backend) => {
    assert.match(await poolCreateError(backend, template("it/pool-nodocker", "ghcr.io/x/hermes:1")), /FailedTGAllocs: .*missing drivers/);
  });
  await withBackend({}, { launcher: ["/bin/false"] }, async (backend) => {
    assert.match(await poolCreateError(backend, template("it/pool-exits")), /allocation \w+ failed: Not Restarting/);
  });
});

test("a Nomad that refuses every registration gets at most a few per second from a pool, which says why", async () => {
  const registrations: number[] = [];
  let createRequests = 0;
  const onRequest = (method: string, path: string): void => {
    if (method === "POST" && path === "/v1/jobs") registrations.push(Date.now());
    // Everything but the pool's sync (one job listing and one allocation read per loop step): what creates send.
    if (!(method === "GET" && (path === "/v1/jobs" || path === "/v1/allocations"))) createRequests += 1;
  };
  // An unknown namespace: real Nomad refuses the register in validation (HTTP 500) and lists nothing.
  await withBackend({ onRequest }, { namespace: "nope", sandboxToken: "tok" }, async (backend) => {
    const pool = template("it/refused");
    const slotPool = new SlotPool({ backend, template: pool, leaseTtlMs: 30_000 });
    await slotPool.start();
    const manager = new PoolManager({ backend, slotPool, min: 2, max: 4, maxConcurrentCreates: 4, intervalMs: 100 });
    const started = Date.now();
    manager.start();
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    await manager.stop();
    await slotPool.close();
    const seconds = (Date.now() - started) / 1000;
    assert.ok(registrations.length >= 3, `${registrations.length} registrations: the pool stopped trying`);
    assert.ok(registrations.length <= 3 * seconds, `${registrations.length} registrations in ${seconds} s`);
    // Each attempt: the job lookup, the token variable, the register and the variable's removal.
    assert.ok(createRequests <= 4 * registrations.length, `${createRequests} create requests for ${registrations.length} registrations`);
    const lastSecond = registrations.filter((at) => at > Date.now() - 1_000).length;
    assert.ok(lastSecond <= 1, `${lastSecond} registrations in the last second`);
    assert.match(manager.createError ?? "", /nonexistent namespace "nope".*\(creates back off \d+ s\)/);
  });
});

test("terminate holds while Nomad's stop is in flight, and a new job of the same name ignores the old allocation", async () => {
  // A slow evaluation: after the purge the old allocation stays running for 400 ms.
  await withBackend({ placementDelayMs: 400 }, { sandboxToken: "tok" }, async (backend) => {
    const first = await backend.create("reuse", template("it/reuse"));
    await backend.terminate(first);
    await assert.rejects(backend.exec(first, { slot: 0, command: "true", timeoutMs: 5_000 }), (e: unknown) => isSandboxError(e, "gone"));
    const second = await backend.create("reuse", template("it/reuse"));
    await new Promise((resolve) => setTimeout(resolve, 600)); // the old allocation is stopped by now
    assert.equal((await backend.exec(second, { slot: 0, command: "echo new", timeoutMs: 5_000 })).stdout, "new\n");
    await backend.terminate(second);
  });
});

test("after an agent restart (the index starts over) create sees the new allocation without waiting out the watch", async () => {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  let fake = await startFakeNomad({ port });
  const backend = new NomadBackend({ address: fake.url, env: {}, sandboxToken: "tok", watchWaitMs: 60_000, readyTimeoutMs: 15_000 });
  try {
    for (const name of ["a", "b", "c"]) await backend.create(name, template("it/restart-agent"));
    await fake.close();
    fake = await startFakeNomad({ port });
    const started = Date.now();
    const info = await backend.create("after", template("it/restart-agent"));
    assert.equal(info.phase, "ready");
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  } finally {
    await backend.close();
    await fake.close();
  }
});
