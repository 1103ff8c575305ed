import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SandboxServerClient, isBatchError } from "../../../src/backends/sandbox-server/client.ts";
import { SandboxError, isSandboxError } from "../../../src/base/errors.ts";

const BIN = new URL("../../../bin/hermes-rollouts.js", import.meta.url).pathname;
const TOKEN = "s3cret";

/** Starts the real CLI on port 0 with NOMAD_ALLOC_DIR set, and reads the bound port from its log. */
async function startServer(
  allocDir: string,
  auth = ["--token", TOKEN],
  extra: { args?: string[]; env?: Record<string, string> } = {},
): Promise<{ child: ChildProcess; baseUrl: string }> {
  const { HERMES_SANDBOX_TOKEN: _, ...env } = process.env;
  const child = spawn(process.execPath, [BIN, "sandbox-server", "--port", "0", "--slots", "3", ...auth, ...(extra.args ?? [])], {
    env: { ...env, ...extra.env, NOMAD_ALLOC_DIR: allocDir, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"port":(\d+)/.exec(buffered);
      if (match?.[1]) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`sandbox server exited with ${code}`)));
  });
  return { child, baseUrl: `http://127.0.0.1:${port}` };
}

describe("sandbox server over HTTP (real process, typed client)", () => {
  let allocDir: string;
  let server: { child: ChildProcess; baseUrl: string };
  let client: SandboxServerClient;

  before(async () => {
    allocDir = await mkdtemp(join(tmpdir(), "hermes-sandbox-server-"));
    server = await startServer(allocDir);
    client = new SandboxServerClient({ baseUrl: server.baseUrl, token: TOKEN });
  });

  after(async () => {
    server.child.kill("SIGTERM");
    await rm(allocDir, { recursive: true, force: true });
  });

  test("health reports slots and isolation", async () => {
    const health = await client.health();
    assert.equal(health.status, "ok");
    assert.equal(health.slots, 3);
    assert.ok(health.isolation === "bwrap" || (health.isolation === "none" && typeof health.message === "string"));
  });

  test("exec runs in the slot's workspace under the alloc data dir and keeps exit codes", async () => {
    const result = await client.exec({ slot: 1, command: "echo hi > f.txt; echo $HERMES_WORKSPACE; exit 7", timeoutMs: 5000 });
    assert.equal(result.exitCode, 7);
    assert.equal(result.timedOut, false);
    const data = await client.readFile(1, "f.txt");
    assert.equal(Buffer.from(data).toString(), "hi\n");
    assert.equal(await readFile(join(allocDir, "data", "slots", "1", "f.txt"), "utf8"), "hi\n");
  });

  test("a fractional timeout (what is left of a trajectory's deadline) is served, not refused", async () => {
    const result = await client.exec({ slot: 0, command: "echo ok", timeoutMs: 4999.25 });
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout, "ok\n");
  });

  test("a fractional deadline on a call without a command (what is left of a start-up wait) is kept, not refused", async () => {
    assert.equal((await client.health(1999.5)).status, "ok");
  });

  test("timeout is 124 and the output cap keeps the tail", async () => {
    const slow = await client.exec({ slot: 0, command: "sleep 5", timeoutMs: 200 });
    assert.equal(slow.exitCode, 124);
    assert.equal(slow.timedOut, true);
    const loud = await client.exec({ slot: 0, command: "seq 1 10000", timeoutMs: 5000, maxOutputBytes: 20 });
    assert.equal(loud.truncated, true);
    assert.ok(loud.stdout.endsWith("9999\n10000\n"));
    assert.ok(Buffer.byteLength(loud.stdout) <= 20);
  });

  test("batch answers in order with {error} entries for failures", async () => {
    const results = await client.batch([
      { slot: 0, command: "echo a", timeoutMs: 5000 },
      { slot: 0, command: ["printf", "b"], timeoutMs: 5000 },
      { slot: 2, command: "echo c", timeoutMs: 5000, cwd: "../../.." },
    ]);
    assert.equal(results.length, 3);
    const [first, second, third] = results;
    assert.ok(first && !isBatchError(first) && first.stdout === "a\n");
    assert.ok(second && !isBatchError(second) && second.stdout === "b");
    assert.ok(third && isBatchError(third) && /outside the slot workspace/.test(third.error));
  });

  test("file write, read and reset; status codes map to SandboxError kinds", async () => {
    await client.writeFile(2, "dir/x.bin", new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual([...(await client.readFile(2, "dir/x.bin"))], [0, 1, 2, 255]);
    await client.reset(2);
    await assert.rejects(
      client.readFile(2, "dir/x.bin"),
      (error: unknown) => isSandboxError(error, "configuration") && / 404 /.test(error.message),
    );
    await assert.rejects(
      client.readFile(2, "../1/f.txt"),
      (error: unknown) => isSandboxError(error, "configuration") && / 403 /.test(error.message),
    );
    await assert.rejects(
      client.exec({ slot: 9, command: "true", timeoutMs: 1000 }),
      (error: unknown) => isSandboxError(error, "configuration") && / 404 /.test(error.message),
    );
    const raw = await fetch(`${server.baseUrl}/exec`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "{" });
    assert.equal(raw.status, 400);
    const wrongToken = new SandboxServerClient({ baseUrl: server.baseUrl, token: "nope" });
    await assert.rejects(wrongToken.health(), (error: unknown) => isSandboxError(error, "configuration") && / 401 /.test(error.message));
  });

  /** Slot 0 asks the server at `baseUrl` for slot 1's secret: with no token, a guessed one, and the right one without `Bearer `. */
  async function stealOverLoopback(via: SandboxServerClient, baseUrl: string): Promise<string> {
    await via.writeFile(1, "secret.txt", new TextEncoder().encode("slot-1-secret"));
    const steal = JSON.stringify({ slot: 1, command: "cat secret.txt", timeoutMs: 5000 });
    const attempt = (header: string) =>
      `curl -s -o /dev/null -w '%{http_code} ' ${header} -H 'content-type: application/json' -d '${steal}' ${baseUrl}/exec`;
    const attack = await via.exec({
      slot: 0,
      command: [attempt(""), attempt("-H 'authorization: Bearer guess'"), attempt(`-H 'authorization: ${TOKEN}'`)].join("; "),
      timeoutMs: 10_000,
    });
    return attack.stdout;
  }

  test("--slot-env gives slot commands the named variables of the server's environment, and only those", async () => {
    const envDir = await mkdtemp(join(tmpdir(), "hermes-sandbox-server-slot-env-"));
    const withEnv = await startServer(envDir, ["--token", TOKEN], {
      args: ["--slot-env", "POOL_SETTING"],
      env: { POOL_SETTING: "from-the-pool", NOT_FOR_SLOTS: "server-only" },
    });
    try {
      const envClient = new SandboxServerClient({ baseUrl: withEnv.baseUrl, token: TOKEN });
      const result = await envClient.exec({ slot: 0, command: 'echo "$POOL_SETTING/${NOT_FOR_SLOTS:-unset}"', timeoutMs: 5000 });
      assert.equal(result.stdout, "from-the-pool/unset\n");
    } finally {
      withEnv.child.kill("SIGTERM");
      await rm(envDir, { recursive: true, force: true });
    }
    await assert.rejects(startServer(envDir, ["--token", TOKEN], { args: ["--slot-env", "NEVER_SET_ANYWHERE"] }), /exited with 1/);
  });

  test("a slot's command cannot reach its own server: slot commands have a network namespace of their own", async () => {
    assert.equal(await stealOverLoopback(client, server.baseUrl), "000 000 000 ", "curl connected");
    // Nor can the slot read the token: the server's environment is not the slot's.
    assert.equal((await client.exec({ slot: 0, command: "env; cat /proc/1/environ", timeoutMs: 5000 })).stdout.includes(TOKEN), false);
  });

  test("with --network host the server is reachable, and still answers 401 without `Bearer <token>`", async () => {
    const hostDir = await mkdtemp(join(tmpdir(), "hermes-sandbox-server-host-network-"));
    const hostServer = await startServer(hostDir, ["--token", TOKEN, "--network", "host"]);
    try {
      const hostClient = new SandboxServerClient({ baseUrl: hostServer.baseUrl, token: TOKEN });
      assert.equal(await stealOverLoopback(hostClient, hostServer.baseUrl), "401 401 401 ");
    } finally {
      hostServer.child.kill("SIGTERM");
      await rm(hostDir, { recursive: true, force: true });
    }
  });

  test("reset kills a running command instead of waiting for its timeout", async () => {
    const running = client.exec({ slot: 1, command: "sleep 30", timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    await client.reset(1);
    const result = await running;
    assert.ok(Date.now() - started < 5000);
    assert.notEqual(result.exitCode, 0);
  });

  test("a server that is gone is classified as gone", async () => {
    const gone = await startServer(allocDir);
    const goneClient = new SandboxServerClient({ baseUrl: gone.baseUrl, token: TOKEN });
    assert.equal((await goneClient.health()).status, "ok");
    await new Promise((resolve) => {
      gone.child.once("exit", resolve);
      gone.child.kill("SIGTERM");
    });
    await assert.rejects(goneClient.health(), (error: unknown) => error instanceof SandboxError && error.kind === "gone");
  });
});

describe("sandbox server without a token", () => {
  test("refuses to start, before it prepares any slot, unless --insecure is given", async () => {
    const allocDir = await mkdtemp(join(tmpdir(), "hermes-sandbox-open-"));
    try {
      await assert.rejects(startServer(allocDir, []), /exited with 1/);
      await assert.rejects(startServer(allocDir, ["--token", ""]), /exited with 1/);
      assert.deepEqual(await readdir(allocDir), [], "nothing prepared");
      const open = await startServer(allocDir, ["--insecure"]);
      try {
        assert.equal((await new SandboxServerClient({ baseUrl: open.baseUrl }).health()).status, "ok");
      } finally {
        open.child.kill("SIGTERM");
      }
    } finally {
      await rm(allocDir, { recursive: true, force: true });
    }
  });
});

test(
  "fail closed: where bwrap cannot run (no capabilities, no user namespace) the server refuses to start, saying why",
  { skip: process.getuid?.() !== 0 && "needs root to drop its capabilities" },
  async () => {
    const allocDir = await mkdtemp(join(tmpdir(), "hermes-sandbox-server-no-bwrap-"));
    try {
      const { HERMES_SANDBOX_TOKEN: _, ...env } = process.env;
      const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(
          "setpriv",
          ["--bounding-set=-all", "--inh-caps=-all", process.execPath, BIN, "sandbox-server", "--port", "0", "--token", TOKEN],
          { env: { ...env, NOMAD_ALLOC_DIR: allocDir, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] },
        );
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        child.once("close", (code) => {
          clearTimeout(timer);
          resolve({ code, output });
        });
      });
      assert.notEqual(result.code, 0, "the server started without isolation");
      assert.match(result.output, /bubblewrap unavailable, slots cannot be isolated: .*Operation not permitted/);
      assert.doesNotMatch(result.output, /listening/);
    } finally {
      await rm(allocDir, { recursive: true, force: true });
    }
  },
);
