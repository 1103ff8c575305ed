/** Scoring and error classification against a scripted SlotExec (no processes). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ExecRequest, ExecResult } from "../../../src/backends/types.ts";
import { InfrastructureError, InvalidItemError, SandboxError } from "../../../src/base/errors.ts";
import { getEnvironment, type SlotExec } from "../../../src/envs/index.ts";

type Reply = Partial<ExecResult> | Error;

function scriptedSlot(replies: Reply[]): SlotExec & { commands: string[]; requests: Omit<ExecRequest, "slot">[] } {
  const commands: string[] = [];
  const requests: Omit<ExecRequest, "slot">[] = [];
  return {
    sandbox: "sb",
    slot: 0,
    commands,
    requests,
    async exec(request: Omit<ExecRequest, "slot">) {
      commands.push(typeof request.command === "string" ? request.command : request.command.join(" "));
      requests.push(request);
      const reply = replies.shift() ?? {};
      if (reply instanceof Error) throw reply;
      return { exitCode: 0, stdout: "", stderr: "", durationMs: 1, timedOut: false, truncated: false, ...reply };
    },
    readFile: async () => new Uint8Array(),
    writeFile: async () => {},
  };
}

/** A slot for verify: its first command restores the test files (nothing changed), the rest are `replies`. */
const verifySlot = (replies: Reply[]) => scriptedSlot([{}, ...replies]);

const ids = Array.from({ length: 5 }, (_, i) => `tests/t.py::test_${i}`);
const row = {
  instance_id: "x",
  repo: "o/r",
  base_commit: "abc1234",
  problem_statement: "p",
  FAIL_TO_PASS: ids.slice(0, 2),
  PASS_TO_PASS: ids.slice(2),
};
const env = getEnvironment("swe-smith-oracle", { installCommand: "", testChunkSize: 2 });
const item = env.parseItem(row);
/** pytest's short summary (-rfEpx) for a chunk whose tests all passed. */
const passed = (...nodeIds: string[]): Reply => ({
  stdout: `..\n${nodeIds.map((id) => `PASSED ${id}`).join("\n")}\n${nodeIds.length} passed in 0.1s\n`,
});

test("1.0 only when every chunk passes; chunks cover every listed test", async () => {
  const slot = verifySlot([passed(ids[0]!, ids[1]!), passed(ids[2]!, ids[3]!), passed(ids[4]!)]);
  const result = await env.verify(item, slot);
  assert.deepEqual([result.score, result.passed, result.details.chunks, result.details.tests], [1, true, 3, 5]);
  assert.equal(slot.commands.length, 4);
  for (const id of ids)
    assert.ok(
      slot.commands.some((c) => c.includes(id)),
      id,
    );
});

test("one failing chunk scores 0.0 and stops", async () => {
  const slot = verifySlot([passed(ids[0]!, ids[1]!), { exitCode: 1, stdout: "FAILED tests/t.py::test_3 - boom\n" }, passed(ids[4]!)]);
  const result = await env.verify(item, slot);
  assert.deepEqual([result.score, result.passed, result.details.failedChunk, result.details.failed], [0, false, 1, ["tests/t.py::test_3"]]);
  assert.equal(slot.commands.length, 3);
});

test("pytest exiting 0 is not enough: a listed test it skipped, deselected or never reported scores 0.0", async () => {
  const skipped = { stdout: `PASSED ${ids[0]}\nSKIPPED [1] tests/t.py:9: unconditional skip\n1 passed, 1 skipped in 0.1s\n` };
  const deselected = { stdout: `PASSED ${ids[1]}\n1 passed, 1 deselected in 0.1s\n` };
  for (const firstChunk of [skipped, deselected, {}]) {
    const slot = verifySlot([firstChunk, passed(ids[2]!, ids[3]!), passed(ids[4]!)]);
    const result = await env.verify(item, slot);
    assert.deepEqual([result.score, result.passed, result.details.failedChunk], [0, false, 0]);
    assert.equal(slot.commands.length, 2);
  }
  const skippedResult = await env.verify(item, verifySlot([skipped]));
  assert.deepEqual(skippedResult.details.notPassed, [ids[1]]);
});

test("a listed test pytest reports as an expected failure counts as passing, as in SWE-smith's grading", async () => {
  const xfail = { stdout: `PASSED ${ids[0]}\nXFAIL ${ids[1]} - known bug\n1 passed, 1 xfailed in 0.1s\n` };
  const result = await env.verify(item, verifySlot([xfail, passed(ids[2]!, ids[3]!), passed(ids[4]!)]));
  assert.equal(result.score, 1);
});

test("test files the agent changed are listed in every verdict; the restore gets the row as environment variables", async () => {
  const slot = scriptedSlot([{ stdout: "changed\ttests/t.py\n" }, passed(ids[0]!, ids[1]!), passed(ids[2]!, ids[3]!), passed(ids[4]!)]);
  const result = await env.verify(item, slot);
  assert.deepEqual([result.score, result.details.testFilesChanged], [1, ["tests/t.py"]]);
  const given = { CACHE_KEY: "o__r", WORKTREE: "r", GIVEN: "abc1234", PRISTINE: "abc1234" };
  assert.deepEqual(slot.requests[0]?.env, { ...given, TEST_FILES: "tests/t.py", APPLY_TEST_PATCH: "" });
});

test("SWE-bench: the files test_patch touches are restored too, then it is applied; one that does not apply fails the item", async () => {
  const testPatch =
    "diff --git a/tests/new.py b/tests/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/new.py\n@@ -0,0 +1 @@\n+x\n";
  const benchItem = env.parseItem({ ...row, FAIL_TO_PASS: JSON.stringify(row.FAIL_TO_PASS), test_patch: testPatch });
  const slot = scriptedSlot([{}, passed(ids[0]!, ids[1]!), passed(ids[2]!, ids[3]!), passed(ids[4]!)]);
  assert.equal((await env.verify(benchItem, slot)).score, 1);
  assert.deepEqual([slot.requests[0]?.env?.TEST_FILES, slot.requests[0]?.env?.APPLY_TEST_PATCH], ["tests/t.py\ntests/new.py", "1"]);
  assert.equal(slot.requests[0]?.stdin, testPatch);
  await assert.rejects(
    env.verify(benchItem, scriptedSlot([{ exitCode: 3, stderr: "error: patch failed: tests/new.py:1" }])),
    (e: unknown) => e instanceof InvalidItemError && /x: test_patch does not apply to abc1234: error: patch failed/.test(e.message),
  );
});

test("details stay bounded whatever pytest prints", async () => {
  const result = await env.verify(item, verifySlot([{ exitCode: 1, stdout: "x".repeat(1_000_000) }]));
  assert.ok(JSON.stringify(result.details).length < 5000);
});

test("a sandbox error passes through; other exec failures become InfrastructureError; neither is a score", async () => {
  await assert.rejects(env.verify(item, scriptedSlot([new SandboxError("gone", "sandbox died")])), SandboxError);
  await assert.rejects(env.verify(item, scriptedSlot([new Error("socket hang up")])), InfrastructureError);
  await assert.rejects(env.verify(item, verifySlot([new Error("socket hang up")])), InfrastructureError);
  await assert.rejects(
    env.verify(item, scriptedSlot([{ exitCode: 128, stderr: "fatal: bad revision" }])),
    (e: unknown) => e instanceof InfrastructureError && /restoring the test files of x failed: fatal: bad revision/.test(e.message),
    "a test-file restore that fails is the infrastructure's, not a 0.0",
  );
  await assert.rejects(
    env.setup(item, scriptedSlot([{ exitCode: 128, stderr: "fatal: no such commit" }])),
    (e: unknown) => e instanceof InfrastructureError && /no such commit/.test(e.message),
  );
});

test("setup passes the row as environment variables and reports the worktree", async () => {
  const slot = scriptedSlot([{}]);
  const setup = await env.setup(item, slot);
  assert.equal(setup.workdir, "r");
  assert.ok(!slot.commands[0]?.includes("abc1234"), "values never spliced into the script");
});

test("shell-task: the check's exit code is the score, setup failures are infrastructure", async () => {
  const shell = getEnvironment("shell-task");
  const task = shell.parseItem({
    id: "t1",
    goal: "Create hello.txt",
    check: "test -f hello.txt",
    setup: "mkdir -p data",
    solution: "touch hello.txt",
  });
  assert.equal(shell.itemId(task), "t1");
  assert.deepEqual(shell.oracleCommands(task), ["touch hello.txt"]);
  assert.equal((await shell.verify(task, scriptedSlot([{ exitCode: 0 }]))).score, 1);
  assert.equal((await shell.verify(task, scriptedSlot([{ exitCode: 1 }]))).score, 0);
  await assert.rejects(shell.setup(task, scriptedSlot([{ exitCode: 2 }])), InfrastructureError);
});
