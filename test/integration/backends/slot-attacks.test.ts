/**
 * A hostile model's terminal commands, run as slot commands through the real local backend under real bubblewrap:
 * the attacks of issue 11 on capabilities, root and the files API, each of which worked before.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chown, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { SLOT_MAX_PROCESSES, slotDirectory, slotUid, TRUSTED_UID } from "../../../src/backends/isolation.ts";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import { SANDBOX_CACHE, type ExecResult, type SandboxInfo } from "../../../src/backends/types.ts";
import { sweSmithConfigSchema, SweSmithOracleEnvironment } from "../../../src/envs/swe-smith-oracle/env.ts";
import type { SlotExec } from "../../../src/envs/types.ts";
import { contractTemplate } from "./contract.ts";
import type { BurstOutcome } from "./fork-burst.ts";

const run = promisify(execFile);
const runAsRoot = process.getuid?.() === 0;
let rootDir: string;
let backend: LocalBackend;
let sandbox: SandboxInfo;

before(async () => {
  rootDir = await mkdtemp(join(tmpdir(), "hermes-slot-attacks-"));
  backend = await LocalBackend.open({ rootDir, isolation: { mode: "bwrap", network: "none" } });
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
    for (const slot of [0, 1]) {
      assert.equal((await succeeds("id -u", slot)).trim(), String(slotUid(slot)));
      assert.equal((await succeeds("id -g", slot)).trim(), String(slotUid(slot)));
    }
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
      for (const path of ["by-slot", "dir/sub/f"]) assert.equal((await stat(join(workspace, path))).uid, slotUid(0));
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

  test("a repository a trusted step made in the cache (owned by another uid than the slot's) clones and reads", async () => {
    const made = await backend.exec(sandbox, {
      slot: 1,
      command: 'cd "$HERMES_CACHE_DIR" && git init -q --bare shared.git && git --git-dir=shared.git config user.name t',
      trusted: true,
      timeoutMs: 30_000,
    });
    assert.equal(made.exitCode, 0, made.stderr);
    const out = await succeeds("git clone -q /cache/shared.git clone && git -C /cache/shared.git config user.name && ls -d clone/.git");
    assert.deepEqual(out.trim().split("\n"), ["t", "clone/.git"]);
    await backend.resetSlot(sandbox, 0);
  });

  test("the slot's private /tmp is writable by the slot user (mktemp, pip and pytest need it) and sticky", async () => {
    const out = await succeeds(["set -e", 'f="$(mktemp)"', 'echo hi > "$f"', 'cat "$f"', "stat -c %a /tmp"].join("\n"));
    assert.deepEqual(out.trim().split("\n"), ["hi", "1777"]);
  });

  test("files the trusted side writes (and the directories it makes) stay writable by the slot, each by its own", async () => {
    for (const slot of [0, 1]) {
      await backend.writeFile(sandbox, slot, "given/deep/setup.txt", "from setup\n");
      await succeeds("echo by-model >> given/deep/setup.txt && touch given/deep/new && touch given/new && rm given/deep/setup.txt", slot);
      await backend.writeFile(sandbox, slot, "given/deep/setup.txt", "again\n");
      assert.equal(Buffer.from(await backend.readFile(sandbox, slot, "given/deep/setup.txt")).toString(), "again\n");
      await backend.resetSlot(sandbox, slot);
    }
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
    // With a reader holding it open, the write open succeeds: still refused, and nothing reaches the reader. The reader
    // runs on the host: a slot command would hold the slot, and the server serialises a slot's calls.
    const reader = run("timeout", ["3", "cat", join(slotDirectory(join(rootDir, sandbox.id), 0), "pipe")]);
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
    await run("mknod", [device, "c", "1", "5"]);
    await assert.rejects(backend.readFile(sandbox, 0, "zero"), /read zero: not a regular file \(a device\)/);
    assert.notEqual((await inSlot("mknod own c 1 5")).exitCode, 0);
  });

  test("symlinks out of the workspace are refused: host files and another slot's", async () => {
    const otherSlot = slotDirectory(join(rootDir, sandbox.id), 1);
    await writeFile(join(otherSlot, "secret"), "slot 1's answer");
    if (runAsRoot) await chown(join(otherSlot, "secret"), slotUid(1), slotUid(1));
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
import { forkBurstAcrossSlots } from ${JSON.stringify(new URL("./fork-burst.ts", import.meta.url).href)};
// The sandbox server runs as this uid too. /proc/self/exe: this machine's node may sit under a home only root enters.
const launcher = ["/proc/self/exe", ${JSON.stringify(new URL("../../../bin/hermes-rollouts.js", import.meta.url).pathname)}];
const backend = await LocalBackend.open({ rootDir: process.argv[2], isolation: "bwrap", launcher });
const template = ${JSON.stringify(contractTemplate({ slots: 2 }))};
const sandbox = await backend.create("s", template);
const command = "id -u; grep CapEff /proc/self/status; touch /workspace/f && echo wrote";
const result = await backend.exec(sandbox, { slot: 0, command, timeoutMs: 30000 });
const workspace = process.argv[2] + "/" + sandbox.id + "/slots/0";
const burst = await forkBurstAcrossSlots({
  exec: (slot, command) => backend.exec(sandbox, { slot, command, timeoutMs: 120000 }),
  attackerWorkspace: workspace,
  attackerTries: ${2 * SLOT_MAX_PROCESSES},
  victimWants: 100,
});
await backend.close();
process.stdout.write(JSON.stringify({ probe: backend.isolation, result, workspace, burst }) + "\n");
`;

/** Who the non-root spawner is on the host: any uid but root's and the slots'. */
const SPAWNER_UID = 2000;

test(
  "started by a non-root user, slots run in a user namespace as their uid, capped in processes",
  { skip: !runAsRoot && "covered above" },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "hermes-non-root-spawner-"));
    try {
      await chown(dir, SPAWNER_UID, SPAWNER_UID);
      const script = join(dir, "spawner.ts");
      await writeFile(script, NON_ROOT_SPAWNER);
      const uid = String(SPAWNER_UID);
      const { stdout } = await run(
        "setpriv",
        [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, script, join(dir, "root")],
        { env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", HOME: dir } },
      );
      const last = stdout.trim().split("\n").at(-1) ?? "";
      const { probe, result, workspace, burst } = JSON.parse(last) as {
        probe: { slotUser: string };
        result: ExecResult;
        workspace: string;
        burst: BurstOutcome;
      };
      assert.equal(probe.slotUser, "user-namespace", JSON.stringify(probe));
      const [id, capEff, wrote] = result.stdout.trim().split("\n");
      assert.equal(id, String(slotUid(0)));
      assert.match(capEff ?? "", /^CapEff:\s+0{16}$/);
      assert.equal(wrote, "wrote");
      assert.equal((await stat(join(workspace, "f"))).uid, SPAWNER_UID, "on the host, the spawner's uid");
      // Counted in the command's own user namespace: slot 0's burst stops there, slot 1 is not held back.
      assert.ok(burst.attacker <= SLOT_MAX_PROCESSES && burst.attacker >= SLOT_MAX_PROCESSES - 10, `slot 0 started ${burst.attacker}`);
      assert.equal(burst.victim, 100);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

/**
 * The grader-tampering attack of issue 11: slot 0 plants git hooks (and a hooksPath, an fsmonitor) in the shared
 * bare cache, which used to run during slot 1's setup and rewrite its tests. Now slots see the cache read-only, and
 * the hooks a writer of the cache left anyway (planted here from the host side) run in neither the trusted fetch,
 * the checkout nor the restore of the tests before verify.
 */
describe("the shared cache against a hostile slot", () => {
  const environment = new SweSmithOracleEnvironment(
    sweSmithConfigSchema.parse({ repoBaseURL: "file:///cache/remotes/", installCommand: "", testCommand: "python3 -m pytest -q" }),
  );
  const sandboxRoot = () => join(rootDir, sandbox.id);
  const slotExec = (slot: number): SlotExec => ({
    sandbox: sandbox.id,
    slot,
    exec: (request) => backend.exec(sandbox, { ...request, slot }),
    readFile: (path) => backend.readFile(sandbox, slot, path),
    writeFile: (path, data) => backend.writeFile(sandbox, slot, path, data),
  });
  const git = (cwd: string, ...args: string[]) =>
    run("git", ["-c", "safe.directory=*", "-C", cwd, ...args]).then(({ stdout }) => stdout.trim());
  // Under setpriv the cache belongs to the trusted steps' uid, as SlotHost.prepare leaves it.
  const giveToCacheOwner = async (path: string) => {
    if (runAsRoot) await run("chown", ["-R", `${TRUSTED_UID}:${TRUSTED_UID}`, path]);
  };
  let item: ReturnType<typeof environment.parseItem>;
  let bare: string;

  before(async () => {
    // The task's remote, where the trusted fetch sees it (/cache/remotes/...), made on the host as the operator would.
    const remote = join(sandboxRoot(), "cache", "remotes", "o", "victim.git");
    const source = await mkdtemp(join(tmpdir(), "hermes-victim-"));
    await writeFile(join(source, "test_victim.py"), "def test_victim():\n    assert 1 == 2\n");
    await git(source, "init", "-q");
    await git(source, "add", "-A");
    await git(source, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "bug");
    await run("git", ["clone", "-q", "--bare", source, remote]);
    await giveToCacheOwner(join(sandboxRoot(), "cache"));
    const row = { instance_id: "o__victim-1", repo: "o/victim", base_commit: await git(source, "rev-parse", "HEAD") };
    item = environment.parseItem({ ...row, problem_statement: "fix it", FAIL_TO_PASS: ["test_victim.py::test_victim"], PASS_TO_PASS: [] });
    bare = join(sandboxRoot(), "cache", "repos", "o__victim.git");
    await rm(source, { recursive: true, force: true });
    await environment.setup(item, slotExec(0));
  });

  test("a slot cannot write the cache: no hook, no config, no file", async () => {
    for (const attack of [
      "printf '#!/bin/sh\\nsed -i s/1 == 2/1 == 1/ test_victim.py\\n' > /cache/repos/o__victim.git/hooks/post-checkout",
      "git config --file /cache/repos/o__victim.git/config core.hooksPath /workspace/hooks",
      "touch /cache/repos/planted",
    ]) {
      const result = await inSlot(attack);
      assert.notEqual(result.exitCode, 0, attack);
      assert.match(result.stderr, /Read-only file system/, attack);
    }
  });

  test("hooks planted in the cache run in no other slot's setup or verify, which still scores the untouched task 0", async () => {
    const pwn =
      '#!/bin/sh\nfor d in "$HERMES_WORKSPACE" "$HERMES_CACHE_DIR"; do touch "$d/pwned-$(basename "$0")"; done\n' +
      'sed -i "s/1 == 2/1 == 1/" "$HERMES_WORKSPACE"/victim/test_victim.py\nexit 0\n';
    const hooks = ["post-checkout", "reference-transaction", "post-index-change", "pre-auto-gc", "fsmonitor"];
    await mkdir(join(bare, "planted-hooks"), { recursive: true });
    for (const hook of hooks) {
      for (const dir of ["hooks", "planted-hooks"]) await writeFile(join(bare, dir, hook), pwn, { mode: 0o755 });
    }
    await git(bare, "config", "core.hooksPath", join(SANDBOX_CACHE, "repos", "o__victim.git", "planted-hooks"));
    await git(bare, "config", "core.fsmonitor", join(SANDBOX_CACHE, "repos", "o__victim.git", "hooks", "fsmonitor"));
    await giveToCacheOwner(bare);

    const victim = slotExec(1);
    const setup = await environment.setup(item, victim);
    assert.equal(await inSlot(`cat ${setup.workdir}/test_victim.py`, 1).then((r) => r.stdout), "def test_victim():\n    assert 1 == 2\n");
    const verdict = await environment.verify(item, victim);
    assert.equal(verdict.score, 0, JSON.stringify(verdict.details));
    assert.deepEqual(verdict.details.testFilesChanged, []);
    const planted = await run("find", [sandboxRoot(), "-name", "pwned-*"]).then(({ stdout }) => stdout.trim());
    assert.equal(planted, "", "no hook ran");
  });

  test("the agent's repository works against the read-only cache and keeps nothing in it", async () => {
    const out = await succeeds(
      [
        "set -e",
        "cd victim",
        "git status --short",
        "echo '# note' >> test_victim.py",
        "git diff --stat",
        "git add -A",
        "git -c user.email=a@b -c user.name=a commit -qm mine",
        "git log --oneline | wc -l",
      ].join("\n"),
      1,
    );
    assert.match(out, /1 file changed/);
    assert.equal(out.trim().split("\n").at(-1), "2");
    assert.deepEqual(await readdir(bare).then((names) => names.filter((name) => name === "worktrees")), []);
  });
});
