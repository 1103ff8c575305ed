import assert from "node:assert/strict";
import { test } from "node:test";
import { getEnvironment } from "../../../src/envs/index.ts";
import { testPlan, type SweSmithConfig } from "../../../src/envs/swe-smith-oracle/env.ts";
import { sweSmithItemSchema } from "../../../src/envs/swe-smith-oracle/item.ts";
import { profileOfLogParser, testCommandLine, testProfile } from "../../../src/envs/swe-smith-oracle/profiles.ts";

// Shaped like SWE-bench's Django logs (the runner writes to stderr; a test's own print can split its line).
const djangoLog = [
  "Testing against Django installed in '/testbed/django'",
  "test_add (calc.tests.AddTests) ... ok",
  "test_sub (calc.tests.SubTests.test_sub) ... FAIL",
  "test_noisy (calc.tests.AddTests) ... printed by the test",
  "ok",
  "test_skip (calc.tests.AddTests) ... skipped 'later'",
  "test_xf (calc.tests.AddTests) ... expected failure",
  "ERROR: test_err (calc.tests.AddTests)",
  "----------------------------------------------------------------------",
].join("\n");

test("the unittest/Django parser reads verdicts after SWE-bench's parse_log_django, 3.11 ids normalised", () => {
  const django = testProfile("django");
  const listed = [
    "test_add (calc.tests.AddTests)",
    "test_sub (calc.tests.SubTests)",
    "test_noisy (calc.tests.AddTests)",
    "test_skip (calc.tests.AddTests)",
    "test_xf (calc.tests.AddTests)",
    "test_err (calc.tests.AddTests)",
    "test_missing (calc.tests.AddTests)",
  ];
  assert.deepEqual(django.unpassed(djangoLog, listed), [
    "test_sub (calc.tests.SubTests)",
    "test_skip (calc.tests.AddTests)",
    "test_err (calc.tests.AddTests)",
    "test_missing (calc.tests.AddTests)",
  ]);
  assert.deepEqual(django.failed(djangoLog, 5), ["test_sub (calc.tests.SubTests)", "test_err (calc.tests.AddTests)"]);
  assert.deepEqual(testProfile("unittest").unpassed(djangoLog, listed), django.unpassed(djangoLog, listed));
});

test("targets: ids become labels; Django ids that are docstrings fall back to test_patch's modules; else none", () => {
  const ids = ["test_a (calc.tests.T)", "test_b (pkg.mod.C)"];
  assert.deepEqual(testProfile("unittest").targets(ids, []), { args: ["calc.tests.T.test_a", "pkg.mod.C.test_b"], exact: true });
  assert.deepEqual(testProfile("django").targets(ids, []), { args: ["calc.tests.T.test_a", "pkg.mod.C.test_b"], exact: true });
  const docstring = ["Adding two numbers works."];
  assert.equal(testProfile("django").targets(docstring, []), undefined);
  assert.deepEqual(testProfile("django").targets(docstring, ["tests/calc/tests.py", "docs/x.txt"]), { args: ["calc.tests"], exact: false });
  assert.equal(testProfile("pytest").targets(ids, []), undefined);
  assert.equal(testProfile("unittest").targets(["tests/a.py::t"], []), undefined);
  assert.deepEqual(testProfile("django").files(ids), ["tests/calc/tests.py", "tests/pkg/mod.py"]);
  assert.deepEqual(testProfile("unittest").files(ids), ["calc/tests.py", "pkg/mod.py"]);
  const django = testProfile("django");
  assert.equal(
    testCommandLine(django.defaultCommand, django, { args: ["calc.tests.T.test_a"], exact: true }),
    "./tests/runtests.py --settings=test_sqlite --parallel 1 --verbosity 2 calc.tests.T.test_a",
  );
});

test("a row's install_config (SWE-rebench) picks its own profile and command over the job's", () => {
  const config = (getEnvironment("swe-smith-oracle", { testCommand: "pytest -x" }) as unknown as { config: SweSmithConfig }).config;
  const row = {
    instance_id: "a__b-1",
    repo: "a/b",
    base_commit: "abc",
    problem_statement: "p",
    FAIL_TO_PASS: ["tests/t.py::test_a"],
    PASS_TO_PASS: [],
  };
  const plan = (extra: object) => testPlan(sweSmithItemSchema.parse({ ...row, ...extra }), config);
  assert.deepEqual(plan({}), {
    profile: testProfile("pytest"),
    command: "pytest -x",
    targets: { args: ["tests/t.py::test_a"], exact: true },
  });
  const rebench = plan({ install_config: JSON.stringify({ test_cmd: "pytest -rA", log_parser: "parse_log_pytest", python: "3.9" }) });
  assert.equal("command" in rebench && rebench.command, "pytest -rA");
  const django = plan({ install_config: { log_parser: "parse_log_django" }, FAIL_TO_PASS: ["test_a (calc.tests.T)"] });
  assert.equal("command" in django && django.command, testProfile("django").defaultCommand, "the job's command is pytest's, not Django's");
  assert.deepEqual(plan({ install_config: { log_parser: "parse_log_sympy" } }), {
    unrunnable: "install_config.log_parser parse_log_sympy has no test profile",
  });
  assert.equal(profileOfLogParser("parse_log_pytest_v2"), "pytest");
  assert.equal(profileOfLogParser("unittest"), "unittest");
});
