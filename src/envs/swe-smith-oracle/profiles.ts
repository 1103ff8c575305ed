/**
 * Test profiles: how a row's test ids are run and how the test runner's log is read back, after SWE-bench's harness
 * (swebench/harness/log_parsers/python.py: parse_log_pytest, parse_log_django; constants/python.py: TEST_DJANGO =
 * "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1", run on the test modules the row touches).
 * Pure: no I/O.
 */
import { shellQuote } from "../shell.ts";

export const TEST_PROFILE_NAMES = ["pytest", "django", "unittest"] as const;
export type TestProfileName = (typeof TEST_PROFILE_NAMES)[number];

/** What one run of a profile is given: the row's test ids, and its test_patch's files (Django runs their modules). */
export interface TestTargets {
  /** Arguments after the test command, unquoted. */
  args: string[];
  /** true when the run is exactly the listed ids, so any failure (a non-zero exit) is one of theirs. */
  exact: boolean;
}

export interface TestProfile {
  readonly name: TestProfileName;
  readonly defaultCommand: string;
  /** Flags the parser relies on, put between the command and the targets. */
  readonly flags: string;
  /** The targets for these ids, or undefined when this profile cannot name them (the row is filtered). */
  targets(ids: readonly string[], patchedFiles: readonly string[]): TestTargets | undefined;
  /** The listed ids the log does not report as passed. */
  unpassed(log: string, ids: readonly string[]): string[];
  /** Ids the log reports as failed or errored, at most `limit`. */
  failed(log: string, limit: number): string[];
  /** The repository files the ids live in (restored before verify). */
  files(ids: readonly string[]): string[];
}

/** `test_x (pkg.mod.Class)`, as Django and unittest print a test without a docstring. */
const UNITTEST_ID = /^(\w+) \((\w+(?:\.\w+)+)\)$/;

/**
 * Python 3.11's unittest prints `test_x (pkg.mod.Class.test_x)`; datasets (and Python before 3.11) name it
 * `test_x (pkg.mod.Class)`, so both are read as the latter.
 */
function normaliseUnittestId(id: string): string {
  const match = /^(\w+) \(([\w.]+)\.(\w+)\)$/.exec(id);
  return match && match[1] === match[3] ? `${match[1]} (${match[2]})` : id;
}

/** `test_x (pkg.mod.Class)` → `pkg.mod.Class.test_x`, the label unittest and Django's runtests.py run. */
function unittestLabel(id: string): string | undefined {
  const match = UNITTEST_ID.exec(id);
  return match ? `${match[2]}.${match[1]}` : undefined;
}

function moduleFile(root: string, id: string): string | undefined {
  const match = UNITTEST_ID.exec(id);
  const parts = match?.[2]?.split(".").slice(0, -1);
  return parts && parts.length > 0 ? `${root}${parts.join("/")}.py` : undefined;
}

/**
 * Per-test status from a unittest/Django verbose log, after SWE-bench's parse_log_django: `name ... ok|OK`
 * passes, `... FAIL` / `... ERROR` / `FAIL: name` / `ERROR: name` fail, a lone `ok` passes the test whose line
 * the test's own output interrupted. An expected failure counts as passed, as pytest's XFAIL does here.
 */
function unittestStatuses(log: string): Map<string, "passed" | "failed"> {
  const statuses = new Map<string, "passed" | "failed">();
  let previous: string | undefined;
  for (const raw of log.split("\n")) {
    const line = raw.trim();
    if (line.includes(" ... ")) previous = normaliseUnittestId(line.slice(0, line.indexOf(" ... ")));
    const verdict = /^(.*?) \.\.\. +(ok|OK|expected failure|FAIL|ERROR)$/.exec(line);
    if (verdict)
      statuses.set(normaliseUnittestId(verdict[1] ?? ""), /^(ok|OK|expected failure)$/.test(verdict[2] ?? "") ? "passed" : "failed");
    const summary = /^(?:FAIL|ERROR): (.+)$/.exec(line);
    if (summary) statuses.set(normaliseUnittestId(summary[1] ?? ""), "failed");
    if (line === "ok" && previous !== undefined) statuses.set(previous, "passed");
  }
  return statuses;
}

function unittestUnpassed(log: string, ids: readonly string[]): string[] {
  const statuses = unittestStatuses(log);
  return ids.filter((id) => statuses.get(normaliseUnittestId(id)) !== "passed");
}

function unittestFailed(log: string, limit: number): string[] {
  return [...unittestStatuses(log)]
    .filter(([, status]) => status === "failed")
    .map(([id]) => id)
    .slice(0, limit);
}

function labelsOf(ids: readonly string[]): string[] | undefined {
  const labels = ids.map(unittestLabel);
  return labels.every((label) => label !== undefined) ? (labels as string[]) : undefined;
}

const pytest: TestProfile = {
  name: "pytest",
  defaultCommand: "python3 -m pytest -q",
  /**
   * pytest exits 0 when a listed test was skipped, deselected (a conftest hook, addopts) or is an unexpected
   * xfail, so each listed id must also appear as a pass in the short summary: `-rfEpx` prints a `PASSED id` or
   * `XFAIL id` line per such test, besides the default FAILED/ERROR lines.
   */
  flags: "-rfEpx --color=no",
  targets: (ids) => (ids.every((id) => id.includes("::")) ? { args: [...ids], exact: true } : undefined),
  /** An expected failure (XFAIL) counts as passed, as SWE-smith's grading (SWE-bench's) counts it. */
  unpassed(log, ids) {
    const lines = log.split("\n").map((line) => line.trimEnd());
    // An XFAIL line may end with " - <reason>".
    const passed = (id: string) =>
      lines.some((line) => line === `PASSED ${id}` || line === `XFAIL ${id}` || line.startsWith(`XFAIL ${id} - `));
    return ids.filter((id) => !passed(id));
  },
  failed(log, limit) {
    const failed = new Set<string>();
    for (const match of log.matchAll(/^(?:FAILED|ERROR) (\S+)/gm)) {
      if (failed.size >= limit) break;
      failed.add(match[1] ?? "");
    }
    return [...failed];
  },
  files: (ids) => ids.filter((id) => id.includes("::")).map((id) => id.slice(0, id.indexOf("::"))),
};

const unittest: TestProfile = {
  name: "unittest",
  defaultCommand: "python3 -m unittest",
  flags: "-v",
  targets(ids) {
    const labels = labelsOf(ids);
    return labels ? { args: labels, exact: true } : undefined;
  },
  unpassed: unittestUnpassed,
  failed: unittestFailed,
  files: (ids) => ids.flatMap((id) => moduleFile("", id) ?? []),
};

const django: TestProfile = {
  name: "django",
  defaultCommand: "./tests/runtests.py --settings=test_sqlite --parallel 1",
  flags: "--verbosity 2",
  /**
   * Each id as a label when every id has the `name (module.Class)` form; otherwise (ids that are a test's docstring)
   * the test modules test_patch touches, as SWE-bench's get_test_directives names them (`tests/a/b.py` → `a.b`).
   */
  targets(ids, patchedFiles) {
    const labels = labelsOf(ids);
    if (labels) return { args: labels, exact: true };
    const modules = patchedFiles.filter((f) => f.startsWith("tests/") && f.endsWith(".py")).map((f) => f.slice(6, -3).replaceAll("/", "."));
    return modules.length > 0 ? { args: [...new Set(modules)], exact: false } : undefined;
  },
  unpassed: unittestUnpassed,
  failed: unittestFailed,
  files: (ids) => ids.flatMap((id) => moduleFile("tests/", id) ?? []),
};

const profiles: Record<TestProfileName, TestProfile> = { pytest, django, unittest };

export function testProfile(name: TestProfileName): TestProfile {
  return profiles[name];
}

/**
 * A row's `install_config.log_parser` (SWE-rebench) names one of SWE-bench's parser functions, or a profile here by
 * name; the parsers with a profile map to it, any other is a row no profile can read (undefined).
 */
export function profileOfLogParser(logParser: string): TestProfileName | undefined {
  if (/^parse_log_pytest(_options|_v2)?$/.test(logParser)) return "pytest";
  if (logParser === "parse_log_django") return "django";
  return TEST_PROFILE_NAMES.find((name) => name === logParser);
}

/** The command line of one run: the command, the profile's flags, the targets quoted. */
export function testCommandLine(command: string, profile: TestProfile, targets: TestTargets): string {
  return `${command} ${profile.flags} ${targets.args.map(shellQuote).join(" ")}`;
}
