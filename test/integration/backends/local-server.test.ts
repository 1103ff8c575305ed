import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { PoolManager } from "../../../src/backends/slots/manager.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import { CONTROL_PLANE_AUTOGROUP_NICE } from "../../../src/backends/local/cpu-priority.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { contractTemplate, waitFor } from "./contract.ts";

/** The pid of the sandbox-server serving `dataDir`, found as an operator would: in the process list, by its argv. */
async function serverPid(dataDir: string): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const args = argv.split("\0");
    if (args.includes("sandbox-server") && args[args.indexOf("--data-dir") + 1] === dataDir) return Number(entry);
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const autogroups = (await readFile("/proc/sys/kernel/sched_autogroup_enabled", "utf8").catch(() => "0")).trim() === "1";
const runnerAutogroup = await readFile("/proc/self/autogroup", "utf8").catch(() => "");

describe("local sandboxes are sandbox-server processes", () => {
  let rootDir: string;
  let backend: LocalBackend;

  before(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "hermes-local-server-"));
    backend = await LocalBackend.open({ rootDir });
  });

  after(async () => {
    await backend.close();
    await rm(rootDir, { recursive: true, force: true });
  });

  test("a sandbox terminated under its server (by another backend on its root) is gone to the next call, not a failed exec", async () => {
    const sandbox = await backend.create("swept", { ...contractTemplate(), pool: "swept" });
    const other = await LocalBackend.open({ rootDir });
    try {
      const [listed] = await other.list("swept");
      await other.terminate(listed!);
    } finally {
      await other.close();
    }
    await assert.rejects(backend.exec(sandbox, { slot: 0, command: "true", timeoutMs: 10_000 }), (error: unknown) =>
      isSandboxError(error, "gone"),
    );
  });

  test("a killed server makes its sandbox gone, and the pool replaces it", async () => {
    const template = { ...contractTemplate(), pool: "killed" };
    const slotPool = new SlotPool({ backend, template, leaseTtlMs: 30_000, resetTimeoutMs: 20_000 });
    await slotPool.start(50);
    const manager = new PoolManager({ backend, slotPool, min: 1, max: 1, maxConcurrentCreates: 1, intervalMs: 100 });
    manager.start();
    try {
      await waitFor(() => slotPool.stats().slotsFree === 2, 20_000, "pool ready");
      const lease = await slotPool.acquire("victim", { timeoutMs: 5000 });
      const pid = await serverPid(join(rootDir, lease.sandbox.id));
      assert.ok(pid !== undefined, "no sandbox-server process serves the sandbox");
      assert.equal(getPriority(pid), Math.min(19, getPriority() + 10), "the server runs below the controller's CPU priority");
      process.kill(pid, "SIGKILL");
      await waitFor(() => !alive(pid), 5000, "server exit");
      await assert.rejects(slotPool.exec(lease.id, { command: "true", timeoutMs: 10_000 }), (error: unknown) =>
        isSandboxError(error, "gone"),
      );
      assert.ok(slotPool.replacements().has(lease.sandbox.name));
      const listed = await backend.list(template.pool);
      assert.equal(listed.find((info) => info.name === lease.sandbox.name)?.phase, "failed");
      await manager.reconcile();
      const next = await slotPool.acquire("survivor", { timeoutMs: 20_000 });
      assert.notEqual(next.sandbox.name, lease.sandbox.name);
      assert.equal((await slotPool.exec(next.id, { command: "echo ok", timeoutMs: 10_000 })).stdout, "ok\n");
      await slotPool.release(next.id);
    } finally {
      await manager.stop(true);
    }
  });

  test("a server that cannot start fails the create as transient, naming why", async () => {
    const broken = await LocalBackend.open({ rootDir: join(rootDir, "broken"), launcher: ["/nonexistent/node"] });
    try {
      await assert.rejects(broken.create("never", { ...contractTemplate(), pool: "broken" }), (error: unknown) => {
        assert.ok(isSandboxError(error, "transient"), String(error));
        assert.match(String(error), /could not start .*ENOENT/);
        return true;
      });
    } finally {
      await broken.close();
    }
  });

  test("a restarted backend serves the sandboxes it finds on disk again, workspaces kept; close stops every server", async () => {
    const template = { ...contractTemplate(), pool: "restart" };
    const sandbox = await backend.create("kept", template);
    await backend.writeFile(sandbox, 1, "note.txt", "still here");
    const first = await serverPid(join(rootDir, sandbox.id));
    assert.ok(first !== undefined);
    const second = await LocalBackend.open({ rootDir });
    try {
      const result = await second.exec(sandbox, { slot: 1, command: "cat note.txt", timeoutMs: 10_000 });
      assert.equal(result.stdout, "still here");
    } finally {
      await second.close();
    }
    // The first backend's server is untouched by the second's close.
    assert.ok(alive(first));
    await backend.terminate(sandbox);
    await waitFor(() => !alive(first), 5000, "server stopped by terminate");
  });

  test("a server whose parent dies exits with it (its end of stdin closes)", async () => {
    // A parent of its own that starts a sandbox and is then killed without any chance to clean up.
    const script = `
      import { LocalBackend } from ${JSON.stringify(new URL("../../../src/backends/local/backend.ts", import.meta.url).href)};
      const backend = await LocalBackend.open({ rootDir: ${JSON.stringify(rootDir)} });
      await backend.create("orphan", { ...${JSON.stringify(contractTemplate())}, pool: "orphan" });
      console.log("ready");`;
    const parent = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      parent.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
      parent.once("exit", (code) => reject(new Error(`parent exited with ${code}`)));
    });
    const pid = await serverPid(join(rootDir, "orphan", "orphan"));
    assert.ok(pid !== undefined && alive(pid));
    parent.kill("SIGKILL");
    await waitFor(() => !alive(pid), 5000, "orphaned server exit");
  });

  test("a server whose parent dies while it still prepares its slots exits too (stdin closed before it listened)", async () => {
    const bin = new URL("../../../bin/hermes-rollouts.js", import.meta.url).pathname;
    const socket = join(rootDir, "early.sock");
    const server = spawn(
      process.execPath,
      [bin, "sandbox-server", "--socket", socket, "--slots", "2", "--data-dir", join(rootDir, "early"), "--parent-stdin"],
      { stdio: ["pipe", "ignore", "inherit"] },
    );
    // The settings line, then the parent is gone at once: the server is still probing bwrap and preparing.
    server.stdin.end(`${JSON.stringify({ token: "t" })}\n`);
    const exited = new Promise<number | null>((resolve) => server.once("exit", resolve));
    const outcome = await Promise.race([exited, new Promise<"alive">((resolve) => setTimeout(resolve, 20_000, "alive"))]);
    if (outcome === "alive") server.kill("SIGKILL");
    assert.notEqual(outcome, "alive", "the server outlived its parent's end of stdin");
  });

  test(
    "the process that starts sandboxes outranks the sessions its slot commands start, when it leads its own (autogroup scheduling)",
    { skip: autogroups && process.getuid?.() === 0 ? false : "needs autogroup scheduling and CAP_SYS_NICE" },
    async () => {
      // In a session of its own (setsid): the weight is the session's, and this test runner's stays as it was.
      const backendModule = new URL("../../../src/backends/local/backend.ts", import.meta.url).href;
      const script = `
        import { readFileSync } from "node:fs";
        import { LocalBackend } from ${JSON.stringify(backendModule)};
        const backend = await LocalBackend.open({
          rootDir: ${JSON.stringify(join(rootDir, "priority"))},
          isolation: { mode: "none", network: "none" },
        });
        console.log(readFileSync("/proc/self/autogroup", "utf8"));
        await backend.close();`;
      const argv = ["--wait", process.execPath, "--input-type=module", "-e", script];
      const child = spawn("setsid", argv, { stdio: ["ignore", "pipe", "inherit"] });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      await new Promise((resolve) => child.once("exit", resolve));
      assert.match(output, new RegExp(`nice ${CONTROL_PLANE_AUTOGROUP_NICE}\\b`));
      const runnerNow = await readFile("/proc/self/autogroup", "utf8");
      assert.equal(runnerNow, runnerAutogroup, "this test runner, which leads no session, opened a backend and left its session as it was");
    },
  );
});
