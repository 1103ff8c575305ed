/**
 * swe-smith-oracle on rows in the real datasets' formats, over a small repository this test builds in each layout
 * (real git remotes over file://, real pytest; slots under bubblewrap when it works here):
 * - SWE-smith as published (the SWE-bench/SWE-smith dataset on the Hugging Face Hub): no base_commit;
 *   `repo` is the mirror `swesmith/<owner>__<name>.<commit8>`, the task is the branch named `instance_id` there (the
 *   bug commit, then a commit removing the failing tests' files) and `patch` creates the bug.
 * - SWE-bench (princeton-nlp/SWE-bench, SWE-bench_Verified): `base_commit`, a gold `patch`, a `test_patch` that adds
 *   the tests of the fix (applied before testing) and FAIL_TO_PASS / PASS_TO_PASS as JSON-encoded strings.
 * - Django's (SWE-bench's django/django rows): ids `test_x (module.Class)` run by `tests/runtests.py`. The repository
 *   is not Django: its runtests.py is a few lines of unittest that take runtests' flags and print what Django's runner
 *   prints at --verbosity 2 (`test_x (module.Class) ... ok` on stderr), so no Django install is needed.
 * - unittest (`python -m unittest -v`), picked by the row's install_config.log_parser (SWE-rebench's column).
 * Each is scored with the gold solution (1.0), untouched (0.0) and with a change to the tests only (0.0).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { getEnvironment, type Environment } from "../../../src/envs/index.ts";
import { bwrapWorks, ProcessSlot, type Isolation } from "./process-slot.ts";

const run = promisify(execFile);
const isolation: Isolation = bwrapWorks() ? "bwrap" : "none";
const GIT_ENV = {
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.invalid",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.invalid",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
};

let root: string;
let remotes: string;
let env: Environment;
let sandboxCount = 0;

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", ["-c", "init.defaultBranch=main", ...args], { cwd, env: { ...process.env, ...GIT_ENV } });
  return stdout.trim();
}

async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
}

/** A library whose `add` the bug breaks: tests/test_add.py fails with the bug, tests/test_sub.py passes either way. */
const FIXED_CALC = {
  "calc/__init__.py": "from .core import add, sub\n",
  "calc/core.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
  "tests/test_add.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
  "tests/test_sub.py": "from calc import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n",
};
const BUG = { "calc/core.py": FIXED_CALC["calc/core.py"].replace("a + b", "a - b") };
const FAIL_TO_PASS = ["tests/test_add.py::test_add"];
const PASS_TO_PASS = ["tests/test_sub.py::test_sub"];

/** A work repository with the fixed library committed on main; returns its path. */
async function fixedRepo(name: string): Promise<string> {
  const work = join(root, "work", name);
  await writeFiles(work, FIXED_CALC);
  await git(work, "init", "-q");
  await git(work, "add", "-A");
  await git(work, "commit", "-q", "-m", "fixed");
  return work;
}

async function publish(work: string, repo: string, ...refspecs: string[]): Promise<void> {
  const remote = join(remotes, `${repo}.git`);
  await mkdir(remote, { recursive: true });
  await git(remote, "init", "-q", "--bare");
  await git(work, "push", "-q", remote, ...refspecs);
}

/** SWE-smith's layout: main, and per task a branch `instance_id` with the bug commit, then the F2P files removed. */
async function sweSmithRow(): Promise<Record<string, unknown>> {
  const repo = "swesmith/acme__calc.c0ffee12";
  const instanceId = "acme__calc.c0ffee12.func_pm_op_swap__ab12cd34";
  const work = await fixedRepo("swesmith");
  await git(work, "checkout", "-q", "-b", instanceId);
  await writeFiles(work, BUG);
  await git(work, "commit", "-q", "-a", "-m", "Bug Patch");
  const patch = `${await git(work, "diff", "--no-color", "main", "HEAD")}\n`;
  await git(work, "rm", "-q", "tests/test_add.py");
  await git(work, "commit", "-q", "-m", "Remove F2P Tests");
  await publish(work, repo, "main", instanceId);
  return {
    instance_id: instanceId,
    repo,
    patch,
    FAIL_TO_PASS,
    PASS_TO_PASS,
    created_at: "2025-01-01T00:00:00",
    image_name: "jyangballin/swesmith.x86_64.acme_1776_calc.c0ffee12",
    problem_statement: "`add(2, 3)` returns -1 instead of 5.",
  };
}

/** SWE-bench's layout: the base commit has the bug and lacks the fix's tests; test_patch adds them. */
async function sweBenchRow(): Promise<Record<string, unknown>> {
  const work = await fixedRepo("swebench");
  await git(work, "rm", "-q", "tests/test_add.py");
  await writeFiles(work, BUG);
  await git(work, "commit", "-q", "-a", "-m", "base: add is broken and untested");
  const baseCommit = await git(work, "rev-parse", "HEAD");
  await writeFiles(work, {
    ...FIXED_CALC,
    "tests/test_sub.py": `${FIXED_CALC["tests/test_sub.py"]}\n\ndef test_sub_negative():\n    assert sub(3, 5) == -2\n`,
  });
  await git(work, "add", "-A");
  const diff = async (dir: string) => `${await git(work, "diff", "--cached", "--no-color", "--", dir)}\n`;
  const [patch, testPatch] = [await diff("calc"), await diff("tests")];
  await git(work, "reset", "-q", "--hard");
  await publish(work, "acme/calc", "main");
  return {
    repo: "acme/calc",
    instance_id: "acme__calc-42",
    base_commit: baseCommit,
    patch,
    test_patch: testPatch,
    problem_statement: "`add(2, 3)` returns -1 instead of 5.",
    hints_text: "",
    created_at: "2025-01-01T00:00:00Z",
    version: "1.0",
    FAIL_TO_PASS: JSON.stringify(FAIL_TO_PASS),
    PASS_TO_PASS: JSON.stringify([...PASS_TO_PASS, "tests/test_sub.py::test_sub_negative"]),
    environment_setup_commit: baseCommit,
  };
}

const UNITTEST_CALC = {
  "calc/__init__.py": FIXED_CALC["calc/__init__.py"],
  "calc/core.py": FIXED_CALC["calc/core.py"],
  "tests/__init__.py": "",
  "tests/test_calc.py":
    "import unittest\n\nfrom calc import add, sub\n\n\nclass CalcTests(unittest.TestCase):\n" +
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n",
};

/** Django's tests/runtests.py, reduced to what the django profile needs: its flags, labels, verbose unittest output. */
const RUNTESTS = `#!/usr/bin/env python3
import argparse, os, sys, unittest
parser = argparse.ArgumentParser()
parser.add_argument("labels", nargs="*")
parser.add_argument("--settings")
parser.add_argument("--parallel")
parser.add_argument("--verbosity", type=int, default=1)
args = parser.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.dirname(here)]
print("Testing against Django installed in '%s'" % os.path.dirname(here))
suite = unittest.defaultTestLoader.loadTestsFromNames(args.labels)
result = unittest.TextTestRunner(verbosity=args.verbosity).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
`;

const DJANGO_CALC = {
  "calc/__init__.py": FIXED_CALC["calc/__init__.py"],
  "calc/core.py": FIXED_CALC["calc/core.py"],
  "tests/runtests.py": RUNTESTS,
  "tests/calc_tests/__init__.py": "",
  "tests/calc_tests/tests.py": UNITTEST_CALC["tests/test_calc.py"],
};

/** The original's layout (base_commit with the bug) over a unittest-style repository; the fix is the gold patch. */
async function unittestStyleRow(
  name: string,
  files: Record<string, string>,
  module: string,
  extra: object,
): Promise<Record<string, unknown>> {
  const work = join(root, "work", name);
  await writeFiles(work, { ...files, ...BUG });
  if ("tests/runtests.py" in files) await run("chmod", ["+x", join(work, "tests/runtests.py")]);
  await git(work, "init", "-q");
  await git(work, "add", "-A");
  await git(work, "commit", "-q", "-m", "base: add is broken");
  const baseCommit = await git(work, "rev-parse", "HEAD");
  await writeFiles(work, { "calc/core.py": FIXED_CALC["calc/core.py"] });
  const patch = `${await git(work, "diff", "--no-color")}\n`;
  await git(work, "checkout", "-q", "--", ".");
  await publish(work, `acme/${name}`, "main");
  return {
    instance_id: `acme__${name}-1`,
    repo: `acme/${name}`,
    base_commit: baseCommit,
    patch,
    problem_statement: "`add(2, 3)` returns -1 instead of 5.",
    FAIL_TO_PASS: [`test_add (${module}.CalcTests)`],
    PASS_TO_PASS: [`test_sub (${module}.CalcTests)`],
    ...extra,
  };
}

function newSlot(): Promise<ProcessSlot> {
  const sandboxRoot = join(root, `sandbox-${sandboxCount++}`);
  return new ProcessSlot({ root: sandboxRoot, sandbox: `sb-${sandboxCount}`, slot: 0, isolation, readOnlyPaths: [remotes] }).prepare();
}

async function sh(slot: ProcessSlot, command: string): Promise<string> {
  const result = await slot.exec({ command, timeoutMs: 30_000 });
  assert.equal(result.exitCode, 0, `${command}: ${result.stderr}`);
  return result.stdout.trim();
}

async function runOracle(slot: ProcessSlot, item: unknown): Promise<void> {
  for (const command of env.oracleCommands(item) ?? []) await sh(slot, command);
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), "hermes-swe-formats-"));
  remotes = join(root, "remotes");
  env = getEnvironment("swe-smith-oracle", { repoBaseURL: `file://${remotes}/`, installCommand: "" });
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe(`swe-smith-oracle on real dataset formats (slots: ${isolation})`, () => {
  test("SWE-smith as published: the agent gets the branch head without the failing tests; gold 1.0, noop 0.0, test-only 0.0", async () => {
    const row = await sweSmithRow();
    const item = env.parseItem(row);
    const head = await git(join(root, "work", "swesmith"), "rev-parse", "HEAD");

    const untouched = await newSlot();
    const { workdir } = await env.setup(item, untouched);
    assert.equal(workdir, "acme__calc.c0ffee12");
    assert.equal(await sh(untouched, `cd ${workdir} && git rev-parse HEAD`), head, "the agent works on the branch head");
    assert.equal(await sh(untouched, `cd ${workdir} && ls tests`), "test_sub.py", "the failing tests' file is absent, as in SWE-smith");
    const noop = await env.verify(item, untouched);
    assert.deepEqual([noop.score, noop.details.phase, noop.details.testFilesChanged], [0, "tests", []], JSON.stringify(noop.details));
    assert.deepEqual(noop.details.failed, FAIL_TO_PASS, "the removed tests were restored from the bug commit and run");

    const gold = await newSlot();
    await env.setup(item, gold);
    await runOracle(gold, item);
    assert.match(await sh(gold, `cd ${workdir} && cat calc/core.py`), /return a \+ b/, "the oracle reverses the bug patch");
    const solved = await env.verify(item, gold);
    assert.deepEqual([solved.score, solved.details.testFilesChanged], [1, []], JSON.stringify(solved.details));

    const hacker = await newSlot();
    await env.setup(item, hacker);
    await hacker.writeFile(`${workdir}/tests/test_add.py`, "def test_add():\n    pass\n");
    const hacked = await env.verify(item, hacker);
    assert.deepEqual([hacked.score, hacked.details.testFilesChanged], [0, ["tests/test_add.py"]], JSON.stringify(hacked.details));
  });

  test("SWE-bench: test_patch is applied before the tests run; gold 1.0, noop 0.0, test-only 0.0", async () => {
    const item = env.parseItem(await sweBenchRow());

    const untouched = await newSlot();
    const { workdir } = await env.setup(item, untouched);
    assert.equal(await sh(untouched, `cd ${workdir} && ls tests`), "test_sub.py", "the fix's tests are not in the base commit");
    const noop = await env.verify(item, untouched);
    assert.deepEqual([noop.score, noop.details.failed], [0, FAIL_TO_PASS], JSON.stringify(noop.details));

    const gold = await newSlot();
    await env.setup(item, gold);
    await runOracle(gold, item);
    const solved = await env.verify(item, gold);
    assert.deepEqual([solved.score, solved.details.tests, solved.details.testFilesChanged], [1, 3, []], JSON.stringify(solved.details));
    const again = await env.verify(item, gold);
    assert.equal(again.score, 1, `verify twice (test_patch already applied once): ${JSON.stringify(again.details)}`);

    const hacker = await newSlot();
    await env.setup(item, hacker);
    await hacker.writeFile(`${workdir}/tests/test_add.py`, "def test_add():\n    pass\n");
    await sh(hacker, `cd ${workdir} && printf 'def test_sub_negative():\\n    pass\\n' >> tests/test_sub.py`);
    const hacked = await env.verify(item, hacker);
    assert.deepEqual(
      [hacked.score, hacked.details.testFilesChanged],
      [0, ["tests/test_add.py", "tests/test_sub.py"]],
      JSON.stringify(hacked.details),
    );
  });

  for (const style of ["django", "unittest"] as const) {
    test(`${style} ids (\`test_x (module.Class)\`): gold 1.0, noop 0.0, test-only 0.0`, async () => {
      const [row, testFile, jobEnv] =
        style === "django"
          ? [
              await unittestStyleRow("djangoish", DJANGO_CALC, "calc_tests.tests", {}),
              "tests/calc_tests/tests.py",
              getEnvironment("swe-smith-oracle", { repoBaseURL: `file://${remotes}/`, installCommand: "", testProfile: "django" }),
            ]
          : // The job's profile is pytest's; the row names its own, as SWE-rebench's install_config does.
            [
              await unittestStyleRow("unittestish", UNITTEST_CALC, "tests.test_calc", {
                install_config: JSON.stringify({ log_parser: "unittest", test_cmd: "python3 -m unittest" }),
              }),
              "tests/test_calc.py",
              env,
            ];
      assert.equal(jobEnv.keepsRow?.(row), true, "the row is the profile's to run, not filtered");
      const item = jobEnv.parseItem(row);
      const untouched = await newSlot();
      const { workdir } = await jobEnv.setup(item, untouched);
      const noop = await jobEnv.verify(item, untouched);
      assert.deepEqual(
        [noop.score, noop.details.profile, noop.details.notPassed],
        [0, style, [`test_add (${style === "django" ? "calc_tests.tests" : "tests.test_calc"}.CalcTests)`]],
        JSON.stringify(noop.details),
      );

      const gold = await newSlot();
      await jobEnv.setup(item, gold);
      for (const command of jobEnv.oracleCommands(item) ?? []) await sh(gold, command);
      const solved = await jobEnv.verify(item, gold);
      assert.deepEqual([solved.score, solved.details.tests, solved.details.testFilesChanged], [1, 2, []], JSON.stringify(solved.details));

      const hacker = await newSlot();
      await jobEnv.setup(item, hacker);
      await sh(hacker, `cd ${workdir} && sed -i 's/assertEqual(add(2, 3), 5)/assertTrue(True)/' ${testFile}`);
      const hacked = await jobEnv.verify(item, hacker);
      assert.deepEqual([hacked.score, hacked.details.testFilesChanged], [0, [testFile]], JSON.stringify(hacked.details));
    });
  }
});
