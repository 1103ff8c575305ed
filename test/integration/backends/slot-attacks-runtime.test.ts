/**
 * More of issue 11's attacks, a hostile model's terminal commands run as slot commands through the real local
 * backend under real bubblewrap: what a command leaves running (a child holding its pipes, a `setsid` daemon), the
 * host's loopback services, the size of /tmp and file flags against reset. The same attacks through
 * `hermes-rollouts run`: test/integration/runner/run-attacks.test.ts.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { SLOT_MAX_PROCESSES, SLOT_TMP_BYTES } from "../../../src/backends/isolation.ts";
import { PIPE_GRACE_MS } from "../../../src/backends/process.ts";
import { DAEMON, openAttackedSandbox, stillBeating, type AttackedSandbox } from "./attacked-sandbox.ts";
import { forkBurstAcrossSlots } from "./fork-burst.ts";

const run = promisify(execFile);
const runAsRoot = process.getuid?.() === 0;
let rootDir: string;

let isolated: AttackedSandbox;
let loopbackService: Server;
let servicePort: number;

before(async () => {
  rootDir = await mkdtemp(join(tmpdir(), "hermes-slot-attacks-runtime-"));
  isolated = await openAttackedSandbox(rootDir, "isolated", { mode: "bwrap", network: "none" });
  // A host-only service, as a model server or the controller's API would be.
  loopbackService = createServer((socket) => socket.end("host secret\n"));
  await new Promise<void>((resolve) => loopbackService.listen(0, "127.0.0.1", resolve));
  servicePort = (loopbackService.address() as { port: number }).port;
});
after(async () => {
  loopbackService.close();
  await isolated.backend.close();
  await rm(rootDir, { recursive: true, force: true });
});

describe("a command's end is its end (bwrap: its pid namespace dies with it)", () => {
  test("a background child holding stdout does not hold the call", async () => {
    const result = await isolated.exec("setsid sleep 30 & sleep 0.3; echo started");
    assert.deepEqual([result.exitCode, result.stdout.trim(), result.timedOut], [0, "started", false]);
    assert.ok(result.durationMs < 5_000, `took ${result.durationMs} ms`);
  });

  test("a setsid daemon dies when the command exits", async () => {
    const result = await isolated.exec(`${DAEMON} sleep 0.5; echo left`);
    assert.equal(result.stdout.trim(), "left");
    assert.equal(await stillBeating(isolated.workspace()), false, "the daemon outlived its command");
  });

  test("a setsid daemon dies when the command times out, and the call ends on time", async () => {
    const result = await isolated.exec(`${DAEMON} sleep 60`, { timeoutMs: 1_000 });
    assert.deepEqual([result.exitCode, result.timedOut], [124, true]);
    assert.ok(result.durationMs < 5_000, `took ${result.durationMs} ms`);
    assert.equal(await stillBeating(isolated.workspace()), false, "the daemon outlived its command");
  });

  test("a burst of 200 background processes is gone with the command", async () => {
    const result = await isolated.exec("for i in $(seq 200); do (setsid sleep 60 &); done; ls /proc | grep -c '^[0-9]'");
    assert.ok(Number(result.stdout.trim()) >= 200, result.stdout);
    const after = await isolated.exec("ls /proc | grep -c '^[0-9]'");
    assert.ok(Number(after.stdout.trim()) < 10, `processes left in the next command's namespace: ${after.stdout}`);
  });
});

describe("a command's end is its end without isolation (spec.isolation.mode none)", () => {
  let unisolated: AttackedSandbox;
  before(async () => {
    unisolated = await openAttackedSandbox(rootDir, "unisolated", { mode: "none", network: "host" });
  });
  after(() => unisolated.backend.close());

  test("a child that left the session and holds stdout loses it: the call ends within the grace", async () => {
    const result = await unisolated.exec("setsid sleep 8 & sleep 0.3; echo started");
    assert.deepEqual([result.exitCode, result.stdout.trim()], [0, "started"]);
    assert.ok(result.durationMs < PIPE_GRACE_MS + 2_000, `took ${result.durationMs} ms`);
  });

  test("a job the shell moved to a process group of its own is killed with the session", async () => {
    const result = await unisolated.exec("set -m; sh -c 'while :; do echo x >> beat; sleep 0.1; done' >/dev/null 2>&1 & sleep 0.3");
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await stillBeating(unisolated.workspace()), false, "the job outlived its command");
  });
});

/** Connects from the slot to 127.0.0.1:port and prints what it got, or the error's class. */
const CONNECT = (port: number) =>
  `python3 -c 'import socket
try:
    print(socket.create_connection(("127.0.0.1", ${port}), timeout=3).recv(100).decode().strip())
except OSError as error:
    print(type(error).__name__)'`;

describe("the network (spec.isolation.network none by default)", () => {
  test("a slot cannot reach a service on the host's 127.0.0.1, nor see it in /proc/net/tcp", async () => {
    const reached = await isolated.exec(CONNECT(servicePort));
    assert.equal(reached.stdout.trim(), "ConnectionRefusedError", reached.stdout + reached.stderr);
    const listening = await isolated.exec("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null");
    const portHex = `:${servicePort.toString(16).toUpperCase().padStart(4, "0")} `;
    assert.ok(!listening.stdout.includes(portHex), "the host's listener is visible");
  });

  test("no route out at all: only the slot's own loopback", async () => {
    const interfaces = await isolated.exec("awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/net/dev");
    assert.deepEqual(interfaces.stdout.trim().split("\n"), ["lo"], interfaces.stderr);
  });

  test("the slot's own loopback works (tests that start a local server)", async () => {
    const out = await isolated.exec(
      `python3 -c 'import socket, threading
server = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=lambda: server.accept()[0].sendall(b"own"), daemon=True).start()
print(socket.create_connection(server.getsockname()).recv(10).decode())'`,
    );
    assert.equal(out.stdout.trim(), "own", out.stderr);
  });

  test("network host, opted into by the pool, reaches it", async () => {
    const hostNetwork = await openAttackedSandbox(rootDir, "host-network", { mode: "bwrap", network: "host" });
    try {
      assert.equal((await hostNetwork.exec(CONNECT(servicePort))).stdout.trim(), "host secret");
    } finally {
      await hostNetwork.backend.close();
    }
  });
});

describe("limits and flags", () => {
  test("what is not limited per slot is said in health (the pool's Isolated condition shows it)", async () => {
    const health = await isolated.backend.health(isolated.sandbox);
    assert.equal(health.isolation, "bwrap");
    const processes = runAsRoot ? "slot \\(a uid of its own\\)" : "slot command \\(a user namespace of its own\\)";
    assert.match(health.message ?? "", new RegExp(`at most ${SLOT_MAX_PROCESSES} processes per ${processes}`));
    assert.match(
      health.message ?? "",
      /\/tmp capped at 1 GiB; no per-slot memory, process or CPU limit asked for; no workspace size cap asked for/,
    );
  });

  test("a fork burst stops at SLOT_MAX_PROCESSES; meanwhile the other slot and a trusted step still start processes", async () => {
    const { backend, sandbox } = isolated;
    const outcome = await forkBurstAcrossSlots({
      exec: (slot, command) => backend.exec(sandbox, { slot, command, timeoutMs: 120_000 }),
      attackerWorkspace: isolated.workspace(),
      attackerTries: 2 * SLOT_MAX_PROCESSES,
      victimWants: 100,
      whileHeld: async () => {
        const trusted = await backend.exec(sandbox, {
          slot: 1, // slot 0's lock is held by its burst
          command: "for i in $(seq 50); do sleep 1 & done; wait; echo ok",
          trusted: true,
          timeoutMs: 30_000,
        });
        assert.equal(trusted.stdout.trim(), "ok", trusted.stderr);
      },
    });
    assert.ok(outcome.attacker <= SLOT_MAX_PROCESSES && outcome.attacker >= SLOT_MAX_PROCESSES - 10, `slot 0 started ${outcome.attacker}`);
    assert.equal(outcome.victim, 100);
    for (const slot of [0, 1]) await backend.resetSlot(sandbox, slot);
  });

  test("/tmp is a tmpfs of SLOT_TMP_BYTES: filling it past that fails at once", async () => {
    const size = await isolated.exec("df -B1 --output=size /tmp | tail -1");
    assert.equal(Number(size.stdout.trim()), SLOT_TMP_BYTES);
    const fill = await isolated.exec(`fallocate -l ${2 * SLOT_TMP_BYTES} /tmp/fill`);
    assert.notEqual(fill.exitCode, 0);
    assert.match(fill.stderr, /No space left on device/);
  });

  test("chattr +i / +a from a slot is refused (no CAP_LINUX_IMMUTABLE)", async () => {
    const result = await isolated.exec("touch f && chattr +i f; chattr +a f; lsattr f");
    assert.match(result.stderr, /Operation not permitted/);
    assert.doesNotMatch(result.stdout, /^\S*[ia]\S* f$/m, result.stdout);
    await isolated.backend.resetSlot(isolated.sandbox, 0);
  });

  test(
    "reset clears immutable and append-only flags (set where a slot could: a spawner holding the capability)",
    { skip: !runAsRoot && "chattr +i needs root" },
    async () => {
      await mkdir(join(isolated.workspace(), "dir"), { recursive: true });
      await writeFile(join(isolated.workspace(), "locked"), "x");
      await writeFile(join(isolated.workspace(), "dir", "log"), "x");
      await run("chattr", ["+i", join(isolated.workspace(), "locked")]);
      await run("chattr", ["+a", join(isolated.workspace(), "dir", "log")]);
      await run("chattr", ["+i", join(isolated.workspace(), "dir")]);
      await isolated.backend.resetSlot(isolated.sandbox, 0);
      assert.deepEqual(await readdir(isolated.workspace()), []);
    },
  );
});
