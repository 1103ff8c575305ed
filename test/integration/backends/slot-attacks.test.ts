/**
 * A hostile model's terminal commands, run as slot commands through the real local backend under real bubblewrap:
 * the attacks of issue 11 on capabilities, root and the files API, each of which worked before.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chown, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { SLOT_UID, slotDirectory } from "../../../src/backends/isolation.ts";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import type { ExecResult, SandboxInfo } from "../../../src/backends/types.ts";
import { contractTemplate } from "./contract.ts";

const runAsRoot = process.getuid?.() === 0;
let rootDir: string;
let backend: LocalBackend;
let sandbox: SandboxInfo;

before(async () => {
  rootDir = await mkdtemp(join(tmpdir(), "hermes-slot-attacks-"));
  backend = await LocalBackend.open({ rootDir, isolation: "bwrap" });
  sandbox = await backend.create("attacked", contractTemplate({ pool: "attacks" }));
});
after(async () => {
  await backend.close();
  await rm(rootDir, { recursive: true, force: true });
});

async function inSlot(command: string, slot = 0): Promise<ExecResult> {
  return backend.exec(sandbox, { slot, command, timeoutMs: 30_000 });
}

async function succeeds(command: string, slot = 0): Promise<string> {
  const result = await inSlot(command, slot);
  assert.equal(result.exitCode, 0, `${command}: ${result.stderr}`);
  return result.stdout;
}

/** The errno a raw syscall fails with, from python3 ctypes (the shell tools check for root themselves). */
const SYSCALL_ERRNO = String.raw`import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
if sys.argv[1] == "mount":
    failed = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) < 0
else:
    # The "shocker" escape: a handle for inode 2 (the filesystem root) opened through the workspace mount.
    handle = ctypes.create_string_buffer(struct.pack("Ii", 8, 1) + struct.pack("II", 2, 0))
    fd = libc.open_by_handle_at(os.open("/workspace", os.O_RDONLY), handle, os.O_RDONLY | os.O_DIRECTORY)
    failed = fd < 0
    if not failed:
        print("escaped:", sorted(os.listdir(fd)))
print(ctypes.get_errno() if failed else 0)
`;

describe("a slot holds no privilege", () => {
  test("the probe records who slots run as (setpriv to a non-root uid when started as root, else a user namespace)", () => {
    assert.equal(backend.isolation.isolation, "bwrap");
    assert.equal(backend.isolation.slotUser, runAsRoot ? "setpriv" : "user-namespace");
    assert.equal(backend.isolation.message, undefined);
  });

  test("no capability in any set, and no_new_privs", async () => {
    const status = await succeeds("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status");
    for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
      assert.match(status, new RegExp(`^${set}:\\s+0{16}$`, "m"), status);
    }
    assert.match(status, /^NoNewPrivs:\s+1$/m);
  });

  test("not uid 0: id, /etc/shadow", async () => {
    assert.equal((await succeeds("id -u")).trim(), String(SLOT_UID));
    assert.equal((await succeeds("id -g")).trim(), String(SLOT_UID));
    const shadow = await inSlot("cat /etc/shadow");
    assert.notEqual(shadow.exitCode, 0);
    assert.match(shadow.stderr, /Permission denied/);
  });

  test("mount and open_by_handle_at are refused by the kernel (EPERM)", async () => {
    const EPERM = "1";
    assert.equal((await succeeds(`python3 -c '${SYSCALL_ERRNO}' mount`)).trim(), EPERM);
    assert.equal((await succeeds(`python3 -c '${SYSCALL_ERRNO}' open_by_handle_at`)).trim(), EPERM);
    const mount = await inSlot("mount -t tmpfs none /tmp");
    assert.notEqual(mount.exitCode, 0);
  });

  test(
    "on the host, the slot's processes and files are not root's",
    { skip: !runAsRoot && "only a root spawner changes uid" },
    async () => {
      await succeeds("echo made > by-slot && mkdir -p dir/sub && touch dir/sub/f");
      const workspace = slotDirectory(join(rootDir, sandbox.id), 0);
      for (const path of ["by-slot", "dir/sub/f"]) assert.equal((await stat(join(workspace, path))).uid, SLOT_UID);
    },
  );
});

describe("normal work still works", () => {
  test("files, git and python tests in the workspace", async () => {
    const out = await succeeds(
      [
        "set -e",
        "git init -q repo && cd repo",
        "printf 'def add(a, b):\\n    return a + b\\n' > calc.py",
        "printf 'from calc import add\\ndef test_add():\\n    assert add(1, 2) == 3\\ntest_add()\\nprint(\"ok\")\\n' > test_calc.py",
        "git add -A && git -c user.email=a@b -c user.name=a commit -qm init",
        "python3 test_calc.py",
        "git rev-list --count HEAD",
      ].join("\n"),
    );
    assert.deepEqual(out.trim().split("\n"), ["ok", "1"]);
  });

  test("files the trusted side writes (and the directories it makes) stay writable by the slot", async () => {
    await backend.writeFile(sandbox, 0, "given/deep/setup.txt", "from setup\n");
    await succeeds("echo by-model >> given/deep/setup.txt && touch given/deep/new && touch given/new && rm given/deep/setup.txt");
    await backend.writeFile(sandbox, 0, "given/deep/setup.txt", "again\n");
    assert.equal(Buffer.from(await backend.readFile(sandbox, 0, "given/deep/setup.txt")).toString(), "again\n");
  });

  test("reset removes what the slot user made, even locked, and leaves a workspace the next lessee can write", async () => {
    await succeeds("mkdir -p locked/inner && touch locked/inner/f && chmod 000 locked/inner locked && chmod 500 /workspace");
    await backend.resetSlot(sandbox, 0);
    assert.deepEqual(await readdir(slotDirectory(join(rootDir, sandbox.id), 0)), []);
    assert.equal((await succeeds("touch after-reset && ls")).trim(), "after-reset");
    await backend.resetSlot(sandbox, 0);
  });
});

describe("the files API against a hostile workspace", () => {
  const quickly = { timeout: 10_000 };

  test("a FIFO is refused at once, for reading and for writing, naming the path", quickly, async () => {
    await succeeds("mkfifo pipe");
    await assert.rejects(backend.readFile(sandbox, 0, "pipe"), /read pipe: not a regular file \(a FIFO\)/);
    await assert.rejects(backend.writeFile(sandbox, 0, "pipe", "x"), /write pipe: not a regular file/);
    // With a reader holding it open, the write open succeeds: still refused, and nothing reaches the reader.
    const reader = inSlot("timeout 3 cat pipe");
    await new Promise((resolve) => setTimeout(resolve, 500));
    await assert.rejects(backend.writeFile(sandbox, 0, "pipe", "leak"), /write pipe: not a regular file \(a FIFO\)/);
    assert.equal((await reader).stdout, "");
  });

  test("a socket and a directory are refused", quickly, async () => {
    await succeeds(`python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")' && mkdir -p adir`);
    await assert.rejects(backend.readFile(sandbox, 0, "sock"), /read sock: not a regular file/);
    await assert.rejects(backend.writeFile(sandbox, 0, "sock", "x"), /write sock: not a regular file/);
    await assert.rejects(backend.readFile(sandbox, 0, "adir"), /read adir: not a regular file \(a directory\)/);
  });

  test("a device node the trusted side finds is refused", { ...quickly, skip: !runAsRoot && "mknod needs root" }, async () => {
    // /dev/zero: read to its end, it never ends. (Slots cannot mknod themselves any more: no CAP_MKNOD.)
    const device = join(slotDirectory(join(rootDir, sandbox.id), 0), "zero");
    await promisify(execFile)("mknod", [device, "c", "1", "5"]);
    await assert.rejects(backend.readFile(sandbox, 0, "zero"), /read zero: not a regular file \(a device\)/);
    assert.notEqual((await inSlot("mknod own c 1 5")).exitCode, 0);
  });

  test("symlinks out of the workspace are refused: host files and another slot's", async () => {
    const otherSlot = slotDirectory(join(rootDir, sandbox.id), 1);
    await writeFile(join(otherSlot, "secret"), "slot 1's answer");
    if (runAsRoot) await chown(join(otherSlot, "secret"), SLOT_UID, SLOT_UID);
    await succeeds(`ln -s /etc/shadow shadow && ln -s /etc etc && ln -s ${otherSlot}/secret other && ln -s ../1/secret relative`);
    for (const path of ["shadow", "etc/shadow", "other", "relative"]) {
      await assert.rejects(backend.readFile(sandbox, 0, path), /outside the slot workspace/, path);
    }
    await assert.rejects(backend.writeFile(sandbox, 0, "other", "overwritten"), /outside the slot workspace/);
    assert.equal(Buffer.from(await backend.readFile(sandbox, 1, "secret")).toString(), "slot 1's answer");
  });
});

/** The local backend in a process that is not root (the chart's controller, a non-root sandbox server). */
const NON_ROOT_SPAWNER = String.raw`
import { LocalBackend } from ${JSON.stringify(new URL("../../../src/backends/local/backend.ts", import.meta.url).href)};
const backend = await LocalBackend.open({ rootDir: process.argv[2], isolation: "bwrap" });
const template = ${JSON.stringify(contractTemplate({ slots: 1 }))};
const sandbox = await backend.create("s", template);
const command = "id -u; grep CapEff /proc/self/status; touch /workspace/f && echo wrote";
const result = await backend.exec(sandbox, { slot: 0, command, timeoutMs: 30000 });
await backend.close();
const workspace = process.argv[2] + "/" + sandbox.id + "/slots/0";
process.stdout.write(JSON.stringify({ probe: backend.isolation, result, workspace }) + "\n");
`;

test("started by a non-root user, slots run in a user namespace as SLOT_UID", { skip: !runAsRoot && "covered above" }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "hermes-non-root-spawner-"));
  try {
    await chown(dir, SLOT_UID + 1, SLOT_UID + 1);
    const script = join(dir, "spawner.ts");
    await writeFile(script, NON_ROOT_SPAWNER);
    const uid = String(SLOT_UID + 1);
    const { stdout } = await promisify(execFile)(
      "setpriv",
      [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, script, join(dir, "root")],
      { env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", HOME: dir } },
    );
    const last = stdout.trim().split("\n").at(-1) ?? "";
    const { probe, result, workspace } = JSON.parse(last) as { probe: { slotUser: string }; result: ExecResult; workspace: string };
    assert.equal(probe.slotUser, "user-namespace", JSON.stringify(probe));
    const [id, capEff, wrote] = result.stdout.trim().split("\n");
    assert.equal(id, String(SLOT_UID));
    assert.match(capEff ?? "", /^CapEff:\s+0{16}$/);
    assert.equal(wrote, "wrote");
    assert.equal((await stat(join(workspace, "f"))).uid, SLOT_UID + 1, "on the host, the spawner's uid");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
