import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidItemError } from "../../../src/base/errors.ts";
import { getEnvironment, type RowFilter } from "../../../src/envs/index.ts";
import {
  patchedFiles,
  repoCacheKey,
  resolveRepoURL,
  sweSmithItemSchema,
  taskCheckout,
  testFiles,
  testsToRun,
  worktreeDirName,
} from "../../../src/envs/swe-smith-oracle/item.ts";
import { testChunkCommand } from "../../../src/envs/swe-smith-oracle/scripts.ts";
import { testCommandLine, testProfile } from "../../../src/envs/swe-smith-oracle/profiles.ts";
import { chunk, shellQuote } from "../../../src/envs/shell.ts";

const row = {
  instance_id: "owner__lib.abc123",
  repo: "owner/lib",
  base_commit: "0123456789abcdef0123456789abcdef01234567",
  problem_statement: "It breaks.",
  FAIL_TO_PASS: '["tests/test_a.py::test_one", "tests/test_a.py::test_two"]',
  PASS_TO_PASS: ["tests/test_b.py::test_ok", "tests/test_a.py::test_one"],
  patch: "diff --git a/x b/x\n",
  image_name: null,
  created_at: "2025-01-01",
};

test("a Hub row parses: JSON-string node id lists, nulls dropped, unknown columns ignored", () => {
  const item = sweSmithItemSchema.parse(row);
  assert.deepEqual(item.FAIL_TO_PASS, ["tests/test_a.py::test_one", "tests/test_a.py::test_two"]);
  assert.equal(item.image_name, undefined);
  assert.equal("created_at" in item, false);
  assert.deepEqual(testsToRun(item), ["tests/test_a.py::test_one", "tests/test_a.py::test_two", "tests/test_b.py::test_ok"]);
});

test("the test files to restore are the files of the listed node ids", () => {
  const item = sweSmithItemSchema.parse({ ...row, PASS_TO_PASS: ["tests/b.py::C::test[a::b]", "tests/test_a.py::test_one", "no_file_id"] });
  assert.deepEqual(testFiles(item), ["tests/b.py", "tests/test_a.py"]);
});

test("a SWE-smith row as published (no base_commit) is the branch instance_id: head given, HEAD~1 pristine, patch reversed", () => {
  const { base_commit: _, ...published } = { ...row, repo: "swesmith/owner__lib.0123abcd", instance_id: "owner__lib.0123abcd.func_pm__x1" };
  const item = sweSmithItemSchema.parse(published);
  const ref = "refs/hermes/tasks/owner__lib.0123abcd.func_pm__x1";
  assert.deepEqual(taskCheckout(item), { branch: item.instance_id, given: ref, pristine: `${ref}~1`, patchIsReversed: true });
  assert.match(getEnvironment("swe-smith-oracle").oracleCommands(published)?.[1] ?? "", / git apply --reverse --whitespace=nowarn - /);
  assert.deepEqual(taskCheckout(sweSmithItemSchema.parse(row)), {
    branch: undefined,
    given: row.base_commit,
    pristine: row.base_commit,
    patchIsReversed: false,
  });
  for (const instanceId of ["-upload", "a..b", "a b", "x.lock", "a/b"]) {
    const parsed = sweSmithItemSchema.safeParse({ ...published, instance_id: instanceId });
    assert.match(parsed.error?.message ?? "", /instance_id names the task's branch/, instanceId);
  }
});

test("the files a patch touches: git headers, ---/+++ lines (paths with spaces), renames; not /dev/null or hunk lines", () => {
  const patch = [
    "diff --git a/tests/test_a.py b/tests/test_a.py",
    "--- a/tests/test_a.py",
    "+++ b/tests/test_a.py",
    "@@ -1 +1 @@",
    "--- a/src/core.py",
    "-- a/src/core.py (a removed line reading '-- a/...')",
    "diff --git a/tests/new file.py b/tests/new file.py",
    "new file mode 100644",
    "--- /dev/null",
    "+++ b/tests/new file.py\t",
    "diff --git a/tests/old.py b/tests/renamed.py",
    "rename from tests/old.py",
    "rename to tests/renamed.py",
  ].join("\n");
  assert.deepEqual(patchedFiles(patch), ["tests/new file.py", "tests/old.py", "tests/renamed.py", "tests/test_a.py"]);
});

test("instance_id falls back to id, then problem_id", () => {
  const { instance_id: _, ...rest } = row;
  assert.equal(sweSmithItemSchema.parse({ ...rest, id: "by-id" }).instance_id, "by-id");
  assert.equal(sweSmithItemSchema.parse({ ...rest, problem_id: "by-problem" }).instance_id, "by-problem");
  assert.equal(sweSmithItemSchema.safeParse(rest).success, false);
});

test("rows that cannot be verified or would inject paths are rejected as InvalidItemError", () => {
  const env = getEnvironment("swe-smith-oracle");
  for (const bad of [
    { ...row, FAIL_TO_PASS: [], PASS_TO_PASS: "[]" },
    { ...row, FAIL_TO_PASS: "not json" },
    { ...row, repo: "../etc" },
    { ...row, repo: "owner/.." },
    { ...row, base_commit: "--upload-pack=evil" },
    { ...row, base_commit: "abc; rm -rf /" },
    { ...row, PASS_TO_PASS: ["../outside.py::test_x"] },
    { ...row, PASS_TO_PASS: ["/etc/passwd::x"] },
    { ...row, test_patch: "diff --git a/../x.py b/../x.py\n" },
  ]) {
    assert.throws(() => env.parseItem(bad), InvalidItemError, JSON.stringify(bad));
  }
});

test("repo URLs resolve under any base, with or without a trailing slash", () => {
  assert.equal(resolveRepoURL("https://github.com/", "owner/lib"), "https://github.com/owner/lib.git");
  assert.equal(resolveRepoURL("https://git.example/mirror", "owner/lib.git"), "https://git.example/mirror/owner/lib.git");
  assert.equal(resolveRepoURL("file:///srv/remotes/", "hermes-mini/textkit"), "file:///srv/remotes/hermes-mini/textkit.git");
  assert.equal(repoCacheKey("owner/lib.git"), "owner__lib");
  assert.equal(worktreeDirName("owner/lib"), "lib");
});

test("node ids are chunked and shell-quoted into the test command", () => {
  assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.deepEqual(chunk([], 3), []);
  assert.throws(() => chunk([1], 0));
  assert.equal(shellQuote("tests/a.py::test[x y]"), "'tests/a.py::test[x y]'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  const pytest = testProfile("pytest");
  const targets = pytest.targets(["tests/a.py::t1", "tests/a.py::t[1 2]"], []);
  assert.ok(targets);
  const command = testChunkCommand("lib", testCommandLine("python3 -m pytest -q", pytest, targets));
  assert.match(command, /^cd "\$HERMES_WORKSPACE"\/lib && /);
  assert.match(command, /python3 -m pytest -q -rfEpx --color=no tests\/a\.py::t1 'tests\/a\.py::t\[1 2\]'$/);
  // Stale bytecode would score the unfixed code: it is dropped and none is written before the tests run.
  assert.ok(
    command.includes(
      "export PYTHONDONTWRITEBYTECODE=1 && find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} + && ",
    ),
    command,
  );
  assert.match(command, /-exec rm -rf \{\} \+ && python3 -m pytest/);
});

test("a listed id counts as passed only with a PASSED or XFAIL summary line of its own", () => {
  const output =
    "s.x.\n=== short test summary info ===\nPASSED tests/a.py::t[1 2]\r\nXFAIL tests/a.py::t3 - flaky\nPASSED " +
    "tests/a.py::t10\nSKIPPED [1] tests/a.py:4: skip\n";
  const listed = ["tests/a.py::t[1 2]", "tests/a.py::t3", "tests/a.py::t1", "tests/a.py::t4"];
  assert.deepEqual(testProfile("pytest").unpassed(output, listed), ["tests/a.py::t1", "tests/a.py::t4"]);
});

test("failed node ids are read from pytest's short summary, bounded", () => {
  const output =
    "F.\n=== short test summary info ===\nFAILED tests/a.py::t1 - assert 1 == 2\nERROR tests/b.py::t2\nFAILED tests/a.py::t3\n";
  assert.deepEqual(testProfile("pytest").failed(output, 10), ["tests/a.py::t1", "tests/b.py::t2", "tests/a.py::t3"]);
  assert.deepEqual(testProfile("pytest").failed(output, 2), ["tests/a.py::t1", "tests/b.py::t2"]);
});

test("the prompt names the repository, the checkout directory, the problem and every test", () => {
  const env = getEnvironment("swe-smith-oracle");
  const { system, user } = env.prompt(env.parseItem(row));
  assert.ok(system.length > 0);
  for (const part of ["owner/lib", "./lib", "It breaks.", "tests/test_b.py::test_ok", row.base_commit])
    assert.ok(user.includes(part), part);
});

test("config: defaults are the original's, unknown keys and unknown environments are rejected", () => {
  const env = getEnvironment("swe-smith-oracle") as unknown as { config: Record<string, unknown> };
  assert.equal(env.config.repoBaseURL, "https://github.com/");
  assert.equal(env.config.testChunkSize, 50);
  assert.match(String(env.config.installCommand), /pip install -q -e \./);
  assert.equal(env.config.testProfile, "pytest");
  assert.equal(env.config.testCommand, undefined, "the profile's own command");
  assert.equal(testProfile("pytest").defaultCommand, "python3 -m pytest -q");
  assert.throws(() => getEnvironment("swe-smith-oracle", { repoBaseUrl: "typo" }), /invalid config/);
  assert.deepEqual(env.config.repoMirrors, {});
  assert.throws(
    () => getEnvironment("swe-smith-oracle", { repoMirrors: { calc: "https://x/calc.git" } }),
    /Invalid key in record\n.*repoMirrors\.calc/,
  );
  assert.throws(() => getEnvironment("nope"), /unknown environment/);
});

test("python_only (on by default) leaves out rows whose tests the job's profile (or the row's) cannot run", async () => {
  const { memorySource, readRows } = await import("../../../src/envs/datasets/index.ts");
  const { rowFilter } = await import("../../../src/envs/index.ts");
  const rows = [
    { ...row, instance_id: "py" },
    { ...row, instance_id: "js", PASS_TO_PASS: ["test/a.test.js > works"] },
    { ...row, instance_id: "no-p2p", PASS_TO_PASS: [] },
    { ...row, instance_id: "django", FAIL_TO_PASS: [], PASS_TO_PASS: ["test_x (a.tests.T)"] },
    {
      ...row,
      instance_id: "rebench-django",
      FAIL_TO_PASS: [],
      install_config: '{"log_parser": "parse_log_django"}',
      PASS_TO_PASS: ["test_x (a.tests.T)"],
    },
    { ...row, instance_id: "unknown-parser", install_config: { log_parser: "parse_log_sympy" } },
    { ...row, instance_id: "py-2" },
    { instance_id: "broken" }, // kept: it fails later as an invalid item, visibly
  ];
  const ids = async (filter: RowFilter | undefined, maxItems?: number) =>
    (
      await Array.fromAsync(
        readRows(memorySource("t", rows), { ...(filter ? { keep: filter.keep } : {}), ...(maxItems ? { maxItems } : {}) }),
      )
    ).map((r) => r.instance_id);
  assert.deepEqual(await ids(rowFilter("swe-smith-oracle")), ["py", "no-p2p", "rebench-django", "py-2", "broken"]);
  const counted = rowFilter("swe-smith-oracle")!;
  await ids(counted);
  assert.equal(counted.filtered, 3, "js, django and unknown-parser are counted as left out");
  const cut = rowFilter("swe-smith-oracle")!;
  assert.deepEqual(await ids(cut, 2), ["py", "no-p2p"], "the filter comes before maxItems");
  assert.equal(cut.filtered, 1, "rows past maxItems are not read, so not counted");
  assert.deepEqual(await ids(rowFilter("swe-smith-oracle", { testProfile: "django" })), ["django", "rebench-django", "broken"]);
  assert.deepEqual(
    await ids(rowFilter("swe-smith-oracle", { pythonOnly: false })),
    rows.map((r) => r.instance_id),
  );
  assert.equal(rowFilter("shell-task"), undefined, "an environment without a filter keeps every row");
});

test("a bad environment config is named field by field, not dumped as JSON", () => {
  assert.throws(
    () => getEnvironment("swe-smith-oracle", { testChunkSize: 0, pythonOnly: "yes" }),
    (error: Error) =>
      /invalid config for environment "swe-smith-oracle"/.test(error.message) &&
      /testChunkSize/.test(error.message) &&
      /pythonOnly/.test(error.message) &&
      !error.message.includes('"code"'),
  );
});
