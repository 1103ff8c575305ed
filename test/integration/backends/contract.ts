/**
 * The one contract every SandboxBackend passes (local, modal via the real SDK against the mock, nomad via the
 * fake). Use it from a `<backend>.contract.test.ts` file:
 *
 *   import { runBackendContract } from "./contract.ts";
 *   runBackendContract("local", async () => ({ backend, template, teardown }));
 *
 * `setup` runs once before the suite; it returns a ready backend, a template (its `pool` is a prefix: each test
 * derives its own pool `<pool>-<test>`; `slots` should be 2..10) and `teardown`, run once after the suite (after
 * every sandbox the suite made was terminated). Timeouts are short; the local run stays well under 30 s.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import { PoolManager } from "../../../src/backends/slots/manager.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";
import { LeaseLostError, isSandboxError } from "../../../src/base/errors.ts";

export interface ContractSetup {
  backend: SandboxBackend;
  template: SandboxTemplate;
  teardown: () => Promise<void>;
}

/** The template every backend's run uses; a backend overrides what it must (an image, a smaller sandbox). */
export function contractTemplate(overrides: Partial<SandboxTemplate> = {}): SandboxTemplate {
  return {
    pool: "contract",
    image: "host",
    slots: 2,
    cpu: 1,
    memoryMiB: 512,
    lifetimeSeconds: 600,
    idleTimeoutSeconds: 0,
    templateHash: "contract-v1",
    ...overrides,
  };
}

export function runBackendContract(name: string, setup: () => Promise<ContractSetup>): void {
  describe(`SandboxBackend contract: ${name}`, () => {
    let env: ContractSetup;
    let sandbox: SandboxInfo;
    const managers: PoolManager[] = [];
    const text = (data: Uint8Array): string => Buffer.from(data).toString("utf8");
    const templateFor = (suffix: string, slots = env.template.slots): SandboxTemplate => ({
      ...env.template,
      pool: `${env.template.pool}-${suffix}`,
      slots,
    });

    /** A slot pool kept at exactly `sandboxes` sandboxes by the embedded manager, ready when it returns. */
    async function startPool(suffix: string, options: { sandboxes: number; slots?: number; leaseTtlMs: number }) {
      const template = templateFor(suffix, options.slots);
      const slotPool = new SlotPool({ backend: env.backend, template, leaseTtlMs: options.leaseTtlMs, resetTimeoutMs: 20_000 });
      await slotPool.start(50);
      const manager = new PoolManager({
        backend: env.backend,
        slotPool,
        min: options.sandboxes,
        max: options.sandboxes,
        maxConcurrentCreates: options.sandboxes,
        intervalMs: 100,
      });
      managers.push(manager);
      manager.start();
      // Ready, and no create still in flight: a backend may list a sandbox ready before its create returns, and that
      // create ending later would race what the test does next (a terminate makes it fail and drop the lease first).
      const ready = () => slotPool.stats().slotsFree === options.sandboxes * template.slots && manager.stats().creating === 0;
      await waitFor(ready, 20_000, `${suffix}: pool ready`);
      return { slotPool, manager, template };
    }

    before(async () => {
      env = await setup();
      sandbox = await env.backend.create("contract-main", templateFor("main"));
    });

    after(async () => {
      for (const manager of managers) await manager.stop(true);
      await env.backend.terminate(sandbox).catch(() => undefined);
      await env.backend.close();
      await env.teardown();
    });

    test("create is idempotent by name and list finds the sandbox", async () => {
      const again = await env.backend.create("contract-main", templateFor("main"));
      assert.equal(again.id, sandbox.id);
      const listed = await env.backend.list(templateFor("main").pool);
      assert.deepEqual(
        listed.map((info) => info.name),
        ["contract-main"],
      );
      assert.equal(listed[0]?.templateHash, env.template.templateHash);
    });

    test("exec returns stdout, stderr and the exit code", async () => {
      const result = await env.backend.exec(sandbox, { slot: 0, command: "echo out; echo err >&2; exit 3", timeoutMs: 10_000 });
      assert.equal(result.exitCode, 3);
      assert.equal(result.stdout, "out\n");
      assert.equal(result.stderr, "err\n");
      assert.equal(result.timedOut, false);
      const argv = await env.backend.exec(sandbox, { slot: 0, command: ["printf", "%s|", "a b", "c"], timeoutMs: 10_000, stdin: "" });
      assert.equal(argv.stdout, "a b|c|");
      const stdin = await env.backend.exec(sandbox, { slot: 0, command: "cat", stdin: "piped", timeoutMs: 10_000 });
      assert.equal(stdin.stdout, "piped");
    });

    test("a command over its timeout exits 124", async () => {
      const started = Date.now();
      const result = await env.backend.exec(sandbox, { slot: 0, command: "sleep 20", timeoutMs: 500 });
      assert.equal(result.exitCode, 124);
      assert.equal(result.timedOut, true);
      assert.ok(Date.now() - started < 10_000);
    });

    test("env and cwd apply; HERMES_WORKSPACE names the workspace as the command sees it", async () => {
      await env.backend.exec(sandbox, { slot: 1, command: "mkdir -p sub/dir", timeoutMs: 10_000 });
      const result = await env.backend.exec(sandbox, {
        slot: 1,
        command: 'echo "$GREETING"; pwd; echo "$HERMES_WORKSPACE"',
        cwd: "sub/dir",
        env: { GREETING: "hello there" },
        timeoutMs: 10_000,
      });
      const [greeting, cwd, workspace] = result.stdout.trim().split("\n");
      assert.equal(greeting, "hello there");
      assert.equal(cwd, `${workspace}/sub/dir`);
      const escaped = env.backend.exec(sandbox, { slot: 1, command: "true", cwd: "../..", timeoutMs: 10_000 });
      await assert.rejects(escaped, (error: unknown) => isSandboxError(error, "configuration"));
    });

    test("output over the cap keeps the tail and says truncated", async () => {
      const result = await env.backend.exec(sandbox, { slot: 0, command: "seq 1 20000", maxOutputBytes: 64, timeoutMs: 10_000 });
      assert.equal(result.truncated, true);
      assert.ok(Buffer.byteLength(result.stdout) <= 64);
      assert.ok(result.stdout.endsWith("19999\n20000\n"));
    });

    test("files round-trip, including binary, and cannot escape the workspace", async () => {
      const bytes = new Uint8Array([0, 255, 10, 13, 128]);
      await env.backend.writeFile(sandbox, 0, "nested/dir/blob.bin", bytes);
      assert.deepEqual([...(await env.backend.readFile(sandbox, 0, "nested/dir/blob.bin"))], [...bytes]);
      await env.backend.writeFile(sandbox, 0, "note.txt", "written ✓");
      const seen = await env.backend.exec(sandbox, { slot: 0, command: "cat note.txt", timeoutMs: 10_000 });
      assert.equal(seen.stdout, "written ✓");
      await assert.rejects(env.backend.readFile(sandbox, 0, "../../etc/passwd"), (error: unknown) =>
        isSandboxError(error, "configuration"),
      );
    });

    test("a write through a dangling symlink does not land in another slot", async () => {
      // The link is made by a slot command, its target relative: it only escapes when followed outside the sandbox.
      await env.backend.exec(sandbox, { slot: 0, command: "ln -s ../1/planted.txt trap.txt", timeoutMs: 10_000 });
      await env.backend.writeFile(sandbox, 0, "trap.txt", "from slot 0").catch(() => undefined);
      const other = await env.backend.exec(sandbox, { slot: 1, command: "ls -A", timeoutMs: 10_000 });
      assert.doesNotMatch(other.stdout, /planted/);
      await env.backend.exec(sandbox, {
        slot: 0,
        command: "rm -f trap.txt; echo old > real.txt; ln -s real.txt alias.txt",
        timeoutMs: 10_000,
      });
      await env.backend.writeFile(sandbox, 0, "alias.txt", "new"); // a link inside the workspace still works
      assert.equal(text(await env.backend.readFile(sandbox, 0, "real.txt")), "new");
      await env.backend.exec(sandbox, { slot: 0, command: "rm -f real.txt alias.txt", timeoutMs: 10_000 });
    });

    test("reset wipes one slot and leaves the others", async () => {
      await env.backend.writeFile(sandbox, 0, "keep.txt", "slot0");
      await env.backend.writeFile(sandbox, 1, ".hidden/x", "slot1");
      await env.backend.resetSlot(sandbox, 1);
      const listing = await env.backend.exec(sandbox, { slot: 1, command: "ls -A", timeoutMs: 10_000 });
      assert.equal(listing.stdout, "");
      assert.equal(text(await env.backend.readFile(sandbox, 0, "keep.txt")), "slot0");
    });

    test("one slot cannot see another slot's workspace (bwrap isolation)", async (t) => {
      const health = await env.backend.health(sandbox);
      assert.ok(health.ok);
      if (health.isolation !== "bwrap") {
        assert.ok(health.message, "isolation off must come with a reason");
        t.skip(`isolation is ${health.isolation}: ${health.message}`);
        return;
      }
      await env.backend.writeFile(sandbox, 0, "secret-of-slot-0.txt", "s3cret");
      const probe = await env.backend.exec(sandbox, {
        slot: 1,
        // Everything writable or mounted from the host, except the read-only system dirs (too big to scan).
        command:
          "find / -path /proc -prune -o -path /sys -prune -o -path /usr -prune -o -path /etc -prune -o -name " +
          "'secret-of-slot-0.txt' -print 2>/dev/null; ls -A /workspace; echo done",
        timeoutMs: 20_000,
      });
      assert.equal(probe.stdout.trim(), "done");
      const write = await env.backend.exec(sandbox, { slot: 1, command: "touch /usr/hermes-probe", timeoutMs: 10_000 });
      assert.notEqual(write.exitCode, 0);
    });

    test("the cache is read-only to slot commands; a trusted step writes it and sees no workspace", async (t) => {
      const run = (slot: number, command: string, trusted?: boolean) =>
        env.backend.exec(sandbox, { slot, command, timeoutMs: 10_000, ...(trusted === undefined ? {} : { trusted }) });
      await env.backend.writeFile(sandbox, 0, "mine.txt", "slot 0");
      const trusted = await run(0, 'mkdir -p "$HERMES_CACHE_DIR/t" && echo fetched > "$HERMES_CACHE_DIR/t/f" && ls -A .', true);
      assert.equal(trusted.exitCode, 0, trusted.stderr);
      const health = await env.backend.health(sandbox);
      if (health.isolation !== "bwrap") {
        t.skip(`isolation is ${health.isolation}: nothing is read-only`);
        return;
      }
      assert.equal(trusted.stdout, "", "a trusted step starts in an empty directory, not the slot's workspace");
      assert.equal((await run(1, 'cat "$HERMES_CACHE_DIR/t/f"')).stdout, "fetched\n");
      for (const attack of ['echo x > "$HERMES_CACHE_DIR/t/f"', 'mkdir "$HERMES_CACHE_DIR/hooks"', 'rm -rf "$HERMES_CACHE_DIR/t"']) {
        const write = await run(1, attack);
        assert.notEqual(write.exitCode, 0, attack);
        assert.match(write.stderr, /Read-only file system/, attack);
      }
      assert.equal((await run(0, 'cat "$HERMES_CACHE_DIR/t/f"')).stdout, "fetched\n");
    });

    test("a terminated sandbox is detected as gone and replaced by the pool", async () => {
      const { slotPool, manager } = await startPool("replace", { sandboxes: 1, slots: 2, leaseTtlMs: 30_000 });
      const lease = await slotPool.acquire("victim", { timeoutMs: 5000 });
      await env.backend.terminate(lease.sandbox);
      await assert.rejects(slotPool.exec(lease.id, { command: "true", timeoutMs: 10_000 }), (error: unknown) =>
        isSandboxError(error, "gone"),
      );
      assert.ok(slotPool.replacements().has(lease.sandbox.name));
      await manager.reconcile();
      const next = await slotPool.acquire("survivor", { timeoutMs: 20_000 });
      assert.notEqual(next.sandbox.name, lease.sandbox.name);
      assert.equal((await slotPool.exec(next.id, { command: "echo ok", timeoutMs: 10_000 })).stdout, "ok\n");
      await assert.rejects(slotPool.renew(lease.id), LeaseLostError);
      await slotPool.release(next.id);
    });

    test("a lease whose holder stops renewing comes back reset", async () => {
      const { slotPool } = await startPool("ttl", { sandboxes: 1, slots: 1, leaseTtlMs: 400 });
      const lease = await slotPool.acquire("crashes", { timeoutMs: 5000 });
      await slotPool.writeFile(lease.id, "dirt.txt", "left behind");
      // The clock has millisecond steps: let it move, so the renewal's later expiry can be seen.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const renewed = await slotPool.renew(lease.id);
      assert.ok(renewed.expiresAt > lease.expiresAt, `renewed to ${renewed.expiresAt}, was ${lease.expiresAt}`);
      const next = await slotPool.acquire("next", { timeoutMs: 10_000 }); // waits for the expiry and the reset
      assert.equal(next.sandbox.name, lease.sandbox.name);
      assert.equal(next.slot, lease.slot);
      const listing = await slotPool.exec(next.id, { command: "ls -A", timeoutMs: 10_000 });
      assert.equal(listing.stdout, "");
      await assert.rejects(slotPool.exec(lease.id, { command: "true", timeoutMs: 1000 }), LeaseLostError);
      await slotPool.release(next.id);
      assert.equal(slotPool.stats().slotsFree, 1);
    });

    test("200 concurrent acquirers on 100 slots never double-assign", async () => {
      const { slotPool } = await startPool("burst", { sandboxes: 10, slots: 10, leaseTtlMs: 30_000 });
      const held = new Set<string>();
      let maxHeld = 0;
      let granted = 0;
      await Promise.all(
        Array.from({ length: 200 }, async (_, index) => {
          const lease = await slotPool.acquire(`holder-${index}`, { timeoutMs: 25_000 });
          const key = `${lease.sandbox.name}/${lease.slot}`;
          assert.ok(!held.has(key), `slot ${key} handed out twice`);
          held.add(key);
          maxHeld = Math.max(maxHeld, held.size);
          granted++;
          await sleep(5);
          held.delete(key);
          await slotPool.release(lease.id);
        }),
      );
      assert.equal(granted, 200);
      assert.ok(maxHeld <= 100);
      assert.equal(slotPool.stats().slotsFree, 100);
    });
  });
}

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
