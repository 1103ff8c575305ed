/**
 * Issue 11's resource attacks, a hostile model's terminal commands run as slot commands through the real local
 * backend (its sandbox server over HTTP) under real bubblewrap: a memory bomb, a fork burst under the cgroup's pids
 * limit, filling the workspace, a daemon that leaves the session without isolation, and the host's loopback services
 * from a slot with a route out (spec.isolation.network egress). Cgroups need a delegated cgroup v2 or root on v1;
 * workspace caps need root and a loop device: where they are missing the tests say so and skip.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { findCgroupPlace } from "../../../src/backends/cgroups.ts";
import { workspaceVolumesUnavailable } from "../../../src/backends/local/workspace-volume.ts";
import { DAEMON, openAttackedSandbox, stillBeating, type AttackedSandbox } from "./attacked-sandbox.ts";
import { forkBurstAcrossSlots } from "./fork-burst.ts";

const MiB = 1024 ** 2;
const LIMITS = { memoryBytes: 128 * MiB, pids: 64, cpuMillis: 1000, workspaceBytes: 64 * MiB };
const place = findCgroupPlace();
const noCgroups = "unavailable" in place ? `no per-slot cgroups here: ${place.unavailable}` : false;
const noVolumes = workspaceVolumesUnavailable() ?? false;

let rootDir: string;

let limited: AttackedSandbox;

before(async () => {
  rootDir = await mkdtemp(join(tmpdir(), "hermes-slot-attacks-limits-"));
  limited = await openAttackedSandbox(rootDir, "limited", { mode: "bwrap", network: "none", slotLimits: LIMITS });
});
after(async () => {
  await limited.backend.close();
  await rm(rootDir, { recursive: true, force: true });
});

describe("per-slot cgroups", { skip: noCgroups }, () => {
  test("health says which limits hold (the pool's Isolated condition shows it)", async () => {
    const health = await limited.backend.health(limited.sandbox);
    assert.match(health.message ?? "", /per-slot cgroup v[12]: memory 128 MiB, 64 processes, 1 CPU/);
  });

  test("a memory bomb is killed at the slot's limit; the other slot, and the slot's next command, run", async () => {
    const bomb = limited.exec("python3 -c 'x = bytearray(512 * 1024 * 1024); print(\"allocated\")'");
    const neighbour = await limited.exec("python3 -c 'x = bytearray(64 * 1024 * 1024); print(\"fine\")'", { slot: 1 });
    assert.equal(neighbour.stdout.trim(), "fine", neighbour.stderr);
    const result = await bomb;
    assert.equal(result.exitCode, 137, `the bomb got its memory: ${result.stdout}${result.stderr}`);
    assert.doesNotMatch(result.stdout, /allocated/);
    assert.equal((await limited.exec("echo alive")).stdout.trim(), "alive");
  });

  test("a fork burst stops at the cgroup's pids limit; meanwhile the other slot starts processes", async () => {
    const outcome = await forkBurstAcrossSlots({
      exec: (slot, command) => limited.exec(command, { slot, timeoutMs: 120_000 }),
      attackerWorkspace: limited.workspace(0),
      attackerTries: 4 * LIMITS.pids,
      victimWants: 40,
    });
    assert.ok(outcome.attacker < LIMITS.pids, `slot 0 started ${outcome.attacker}`);
    assert.equal(outcome.victim, 40);
    for (const slot of [0, 1]) await limited.backend.resetSlot(limited.sandbox, slot);
  });
});

describe("size-capped workspaces", { skip: noVolumes }, () => {
  test("filling the workspace gets ENOSPC at its cap; the other slot and the host still write", async () => {
    const fill = await limited.exec("dd if=/dev/zero of=fill bs=1M count=1024; fallocate -l 1G more");
    assert.match(fill.stderr, /No space left on device[\s\S]*No space left on device/, fill.stderr);
    assert.ok((await stat(join(limited.workspace(0), "fill"))).size <= LIMITS.workspaceBytes);
    const neighbour = await limited.exec("dd if=/dev/zero of=data bs=1M count=16 2>&1 && echo written", { slot: 1 });
    assert.match(neighbour.stdout, /written/, neighbour.stderr);
    await writeFile(join(rootDir, "host-file"), Buffer.alloc(16 * MiB));
  });

  test("the cap holds across a reset, which empties the workspace", async () => {
    await limited.backend.resetSlot(limited.sandbox, 0);
    const size = await limited.exec("ls -A | wc -l; df -B1 --output=size /workspace | tail -1");
    const [entries, bytes] = size.stdout.trim().split("\n").map(Number);
    assert.equal(entries, 0);
    assert.ok(bytes !== undefined && bytes <= LIMITS.workspaceBytes && bytes > LIMITS.workspaceBytes / 2, size.stdout);
  });
});

describe("a command's end is its end without isolation (spec.isolation.mode none)", { skip: noCgroups }, () => {
  test("a setsid daemon, which leaves the command's session, dies with the slot's cgroup", async () => {
    const unisolated = await openAttackedSandbox(rootDir, "unisolated", { mode: "none", network: "host" });
    try {
      assert.equal((await unisolated.exec(`${DAEMON} sleep 0.3`)).exitCode, 0);
      assert.equal(await stillBeating(unisolated.workspace()), false, "the daemon outlived its command");
    } finally {
      await unisolated.backend.close();
    }
  });
});

/** An IPv4 address of this host that is not loopback, where a test server stands in for the internet. */
const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((address) => address !== undefined && address.family === "IPv4" && !address.internal)?.address;

/** Connects from the slot and prints what it got, or the error's class. */
const CONNECT = (host: string, port: number) =>
  `python3 -c 'import socket
try:
    print(socket.create_connection(("${host}", ${port}), timeout=5).recv(100).decode().strip())
except OSError as error:
    print(type(error).__name__)'`;

describe("network egress: out, but not to the host's loopback", { skip: outsideAddress === undefined && "no non-loopback address" }, () => {
  let egress: AttackedSandbox;
  let loopbackService: Server;
  let outsideService: Server;
  const listen = async (server: Server, host: string): Promise<number> => {
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    return (server.address() as { port: number }).port;
  };
  let loopbackPort: number;
  let outsidePort: number;

  before(async () => {
    egress = await openAttackedSandbox(rootDir, "egress", { mode: "bwrap", network: "egress" });
    loopbackService = createServer((socket) => socket.end("host secret\n"));
    outsideService = createServer((socket) => socket.end("outside\n"));
    loopbackPort = await listen(loopbackService, "127.0.0.1");
    outsidePort = await listen(outsideService, outsideAddress ?? "");
  });
  after(async () => {
    loopbackService.close();
    outsideService.close();
    await egress.backend.close();
  });

  test("a service on a non-loopback address is reached", async () => {
    const reached = await egress.exec(CONNECT(outsideAddress ?? "", outsidePort));
    assert.equal(reached.stdout.trim(), "outside", reached.stderr);
  });

  test("the host's 127.0.0.1 is not: neither as 127.0.0.1 nor through the gateway", async () => {
    for (const host of ["127.0.0.1", "10.0.2.2"]) {
      const reached = await egress.exec(CONNECT(host, loopbackPort));
      assert.notEqual(reached.stdout.trim(), "host secret", `reached through ${host}`);
      assert.match(reached.stdout.trim(), /ConnectionRefusedError|TimeoutError|OSError/, reached.stderr);
    }
  });
});
