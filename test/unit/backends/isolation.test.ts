import { test } from "node:test";
import assert from "node:assert/strict";
import {
  buildSlotCommand,
  isolationDiagnosis,
  resolveInsideWorkspace,
  SLOT_MAX_PROCESSES,
  SLOT_TMP_BYTES,
  slotUid,
  TRUSTED_UID,
} from "../../../src/backends/isolation.ts";
import { TailBuffer } from "../../../src/backends/process.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { bindsOf } from "../../support/bwrap-args.ts";

const argAfter = (args: string[], flag: string): string[] => {
  const index = args.indexOf(flag);
  return args.slice(index + 1, index + 3);
};

test("bwrap plan: only the slot workspace is bound writable, the cache read-only, cwd inside /workspace", () => {
  const plan = buildSlotCommand({
    sandboxRoot: "/srv/sb",
    slot: 3,
    command: "make test",
    cwd: "repo",
    env: { A: "1" },
    isolation: "bwrap",
  });
  assert.equal(plan.file, "bwrap");
  assert.deepEqual(plan.args.slice(-4), ["--", "bash", "-c", "make test"]);
  assert.deepEqual(bindsOf(plan.args, "--bind"), ["/srv/sb/slots/3 -> /workspace"]);
  assert.deepEqual(bindsOf(plan.args, "--ro-bind"), ["/srv/sb/cache -> /cache"]);
  for (const flag of ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--die-with-parent"]) {
    assert.ok(plan.args.includes(flag), flag);
  }
  assert.deepEqual(argAfter(plan.args, "--tmpfs").slice(0, 1), ["/tmp"]);
  assert.deepEqual(argAfter(plan.args, "--size"), [String(SLOT_TMP_BYTES), "--tmpfs"], "the size applies to /tmp");
  assert.deepEqual(argAfter(plan.args, "--chdir").slice(0, 1), ["/workspace/repo"]);
  assert.ok(!plan.args.includes("/srv/sb/slots/2"));
  assert.equal(plan.env.HERMES_WORKSPACE, "/workspace");
  assert.equal(plan.env.HERMES_CACHE_DIR, "/cache");
  assert.equal(plan.env.A, "1");
});

test("network: a namespace of its own unless the pool says host or the environment's own step asks for the host's", () => {
  const unshares = (spec: Partial<Parameters<typeof buildSlotCommand>[0]>) =>
    buildSlotCommand({ sandboxRoot: "/r", slot: 0, command: "x", isolation: "bwrap", ...spec }).args.includes("--unshare-net");
  assert.equal(unshares({}), true);
  assert.equal(unshares({ network: "none" }), true);
  assert.equal(unshares({ network: "host" }), false);
  assert.equal(unshares({ trusted: true }), false, "fetch into the cache");
});

test("bwrap plan of a trusted step: the cache writable, no workspace but an empty writable one of its own, and no cwd taken", () => {
  const plan = buildSlotCommand({ sandboxRoot: "/srv/sb", slot: 3, command: "git fetch", isolation: "bwrap", trusted: true });
  assert.deepEqual(bindsOf(plan.args, "--bind"), ["/srv/sb/cache -> /cache"]);
  assert.deepEqual(bindsOf(plan.args, "--ro-bind"), []);
  assert.ok(!plan.args.some((arg) => arg.startsWith("/srv/sb/slots")), "no slot workspace is mounted");
  // Where it builds what slots will see at the same paths (an editable install into the cache): writable by the slot user.
  const workspace = plan.args.indexOf("/workspace");
  assert.deepEqual(plan.args.slice(workspace - 3, workspace + 1), ["--perms", "1777", "--tmpfs", "/workspace"]);
  assert.throws(
    () => buildSlotCommand({ sandboxRoot: "/srv/sb", slot: 3, command: "x", cwd: "repo", isolation: "bwrap", trusted: true }),
    (error: unknown) => isSandboxError(error, "configuration") && /trusted step takes no cwd/.test(String(error)),
  );
});

test("no-isolation plan runs the argv directly in the host slot directory with host paths in env", () => {
  const plan = buildSlotCommand({ sandboxRoot: "/srv/sb", slot: 0, command: ["python3", "-V"], isolation: "none" });
  assert.deepEqual([plan.file, ...plan.args], ["python3", "-V"]);
  assert.equal(plan.cwd, "/srv/sb/slots/0");
  assert.equal(plan.env.HERMES_WORKSPACE, "/srv/sb/slots/0");
  assert.equal(plan.env.HERMES_CACHE_DIR, "/srv/sb/cache");
  assert.equal(plan.env.HOME, "/srv/sb/slots/0");
});

test("request env cannot override the HERMES_* paths; the host environment is not inherited", () => {
  process.env.HERMES_TEST_SECRET = "leak";
  const plan = buildSlotCommand({ sandboxRoot: "/r", slot: 0, command: "env", env: { HERMES_WORKSPACE: "/etc" }, isolation: "bwrap" });
  assert.equal(plan.env.HERMES_WORKSPACE, "/workspace");
  assert.equal(plan.env.HERMES_TEST_SECRET, undefined);
});

test("paths resolve inside the workspace or fail as configuration errors", () => {
  assert.equal(resolveInsideWorkspace("/w", "a/../b"), "/w/b");
  assert.equal(resolveInsideWorkspace("/w", "/workspace/x"), "/w/x");
  assert.equal(resolveInsideWorkspace("/w", undefined), "/w");
  for (const bad of ["..", "../x", "/etc/passwd", "a/../../x"]) {
    assert.throws(
      () => resolveInsideWorkspace("/w", bad),
      (error: unknown) => isSandboxError(error, "configuration"),
      bad,
    );
  }
});

test("TailBuffer keeps the last bytes across chunks and flags truncation", () => {
  const tail = new TailBuffer(5);
  tail.push(Buffer.from("abc"));
  assert.equal(tail.truncated, false);
  tail.push(Buffer.from("defg"));
  tail.push(Buffer.from("h"));
  assert.equal(tail.text(), "defgh");
  assert.equal(tail.truncated, true);
});

test("a failed probe's message becomes what a cluster admin can change", () => {
  // As the probe reported it in a pod on containerd + runc (the local cluster's node).
  const maskedProc =
    "bubblewrap unavailable, slots are NOT isolated from each other: user-namespace: Command failed: bwrap --unshare-user " +
    "--uid 1000 --gid 1000 --proc /proc -- true: bwrap: Can't mount proc on /newroot/proc: Operation not permitted";
  assert.match(isolationDiagnosis(maskedProc)!, /\/proc is masked.*runtimeClassName.*procMount: Unmasked/);
  const noUserns = "user-namespace: Command failed: bwrap --unshare-user -- true: bwrap: setting up uid map: Permission denied";
  assert.match(isolationDiagnosis(noUserns)!, /user namespaces are refused: seccomp RuntimeDefault/);
  assert.match(isolationDiagnosis("user-namespace: spawn bwrap ENOENT")!, /not installed/);
  const noPrlimit = "setpriv: bwrap failed (1): bwrap: execvp prlimit: No such file or directory";
  assert.equal(isolationDiagnosis(noPrlimit), "util-linux (prlimit, setpriv) is not installed in the sandbox image");
  assert.equal(isolationDiagnosis(undefined), undefined);
});

test("each slot runs as a uid of its own under a process cap; trusted steps as TRUSTED_UID without one", () => {
  const plan = (slotUser: "setpriv" | "user-namespace" | "spawner", slot: number, trusted = false) =>
    buildSlotCommand({ sandboxRoot: "/srv/sb", slot, command: ["true"], isolation: "bwrap", slotUser, trusted }).args;
  const afterSeparator = (args: string[]) => args.slice(args.indexOf("--") + 1);
  const prlimit = ["prlimit", `--nproc=${SLOT_MAX_PROCESSES}`, "--"];
  const setpriv = (uid: number) => [
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--",
  ];
  assert.deepEqual(afterSeparator(plan("setpriv", 2)), [...prlimit, ...setpriv(slotUid(2)), "true"]);
  assert.deepEqual(afterSeparator(plan("setpriv", 2, true)), [...setpriv(TRUSTED_UID), "true"]);
  assert.deepEqual(argAfter(plan("user-namespace", 2), "--uid"), [String(slotUid(2)), "--gid"]);
  assert.deepEqual(afterSeparator(plan("user-namespace", 2)), [...prlimit, "true"]);
  assert.deepEqual(argAfter(plan("user-namespace", 2, true), "--uid"), [String(TRUSTED_UID), "--gid"]);
  assert.deepEqual(afterSeparator(plan("spawner", 2)), ["true"], "one uid for all slots: a cap would be shared");
  assert.equal(new Set([0, 1, 2].map(slotUid).concat(TRUSTED_UID)).size, 4);
  const env = (slotUser: "setpriv" | "user-namespace", trusted: boolean) =>
    buildSlotCommand({ sandboxRoot: "/srv/sb", slot: 0, command: ["git"], isolation: "bwrap", slotUser, trusted }).env.GIT_CONFIG_SYSTEM;
  assert.equal(env("setpriv", false), "/cache/.slot-gitconfig", "the cache's owner is another uid: git must trust it");
  assert.deepEqual([env("setpriv", true), env("user-namespace", false)], [undefined, undefined]);
});
