/** SWE-smith-oracle rows: schema, repository naming and the tests to run. Pure: no I/O. */
import { createHash } from "node:crypto";
import { z } from "zod";
import { testProfile } from "./profiles.ts";

function decodeJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value; // left for the schema to reject with a readable message
  }
}

/** The Hub stores FAIL_TO_PASS / PASS_TO_PASS as JSON-encoded strings; JSONL files usually hold real lists. */
function decodeJsonList(value: unknown): unknown {
  if (value === undefined || value === null) return [];
  if (typeof value !== "string") return value;
  const trimmed = value.trim();
  return trimmed === "" ? [] : decodeJson(trimmed);
}

const nodeIds = z.preprocess(decodeJsonList, z.array(z.string().min(1)));

const optionalText = z
  .string()
  .nullish()
  .transform((v) => v ?? undefined);

/** `owner/name`, as a row's `repo` names a repository. */
export const REPO_NAME = /^[\w.-]+\/[\w.-]+$/;

export const sweSmithItemSchema = z
  .object({
    instance_id: z.string().min(1).optional(),
    id: z.string().min(1).optional(),
    problem_id: z.string().min(1).optional(),
    repo: z
      .string()
      .regex(REPO_NAME, "repo must be owner/name")
      .refine((r) => !r.split("/").some((part) => part === "." || part === ".."), "repo must not contain . or .. parts"),
    base_commit: z
      .string()
      .regex(/^[\w./-]+$/, "base_commit must be a commit id")
      .refine((c) => !c.startsWith("-"), "base_commit must not start with -")
      .nullish()
      .transform((v) => v ?? undefined),
    problem_statement: z.string(),
    FAIL_TO_PASS: nodeIds,
    PASS_TO_PASS: nodeIds,
    patch: optionalText,
    /** SWE-bench's tests of the fix, applied before verify. */
    test_patch: optionalText,
    text: optionalText,
    image_name: optionalText,
    /** SWE-rebench's per-row test command and SWE-bench log parser name (a JSON string on the Hub). */
    install_config: z.preprocess(
      (value) => (typeof value === "string" ? decodeJson(value) : value),
      z
        .looseObject({ test_cmd: z.string().min(1).nullish(), log_parser: z.string().min(1).nullish() })
        .nullish()
        .transform((v) => (v ? { test_cmd: v.test_cmd ?? undefined, log_parser: v.log_parser ?? undefined } : undefined)),
    ),
  })
  .transform(({ id, problem_id, instance_id, ...row }, ctx) => {
    const instanceId = instance_id ?? id ?? problem_id;
    if (instanceId === undefined) {
      ctx.addIssue({ code: "custom", message: "one of instance_id, id or problem_id is required" });
      return z.NEVER;
    }
    if (row.FAIL_TO_PASS.length + row.PASS_TO_PASS.length === 0) {
      ctx.addIssue({ code: "custom", message: "FAIL_TO_PASS and PASS_TO_PASS are both empty: nothing to verify" });
      return z.NEVER;
    }
    if (row.base_commit === undefined && !isBranchName(instanceId)) {
      const message = "without base_commit (a SWE-smith row) instance_id names the task's branch: letters, digits, _ . - only";
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
    const outside = testFiles(row).find((path) => !isInsideRepository(path));
    if (outside !== undefined) {
      ctx.addIssue({ code: "custom", message: `FAIL_TO_PASS / PASS_TO_PASS: test file ${outside} is not a path inside the repository` });
      return z.NEVER;
    }
    const patchedOutside = patchedFiles(row.test_patch ?? "").find((path) => !isInsideRepository(path));
    if (patchedOutside !== undefined) {
      ctx.addIssue({ code: "custom", message: `test_patch: ${patchedOutside} is not a path inside the repository` });
      return z.NEVER;
    }
    return { instance_id: instanceId, ...row };
  });

export type SweSmithItem = z.output<typeof sweSmithItemSchema>;

/** A plain branch name git accepts as it is (`git check-ref-format --branch`), with no option-like start. */
function isBranchName(name: string): boolean {
  return /^\w[\w.-]*$/.test(name) && !name.includes("..") && !name.endsWith(".") && !name.endsWith(".lock");
}

/**
 * Where a task's code and tests come from, as commit-ish names in the bare cache. A row with `base_commit` (the
 * original's and SWE-bench's format) is worked on and tested at that commit. A SWE-smith row as published has none:
 * its task is the branch named `instance_id` in the mirror repository, whose head removes the failing tests' files
 * from the bug commit before it; the agent works on the head, the tests come from the bug commit (HEAD~1), and
 * `patch` creates the bug, so the solution is that patch reversed.
 */
export interface TaskCheckout {
  /** The branch setup fetches (SWE-smith rows), else undefined. */
  branch: string | undefined;
  /** The commit-ish checked out for the agent. */
  given: string;
  /** The commit-ish the test files are restored from before verify. */
  pristine: string;
  patchIsReversed: boolean;
}

export function taskCheckout(item: Pick<SweSmithItem, "base_commit" | "instance_id">): TaskCheckout {
  if (item.base_commit !== undefined)
    return { branch: undefined, given: item.base_commit, pristine: item.base_commit, patchIsReversed: false };
  const ref = `${TASK_BRANCH_REFS}${item.instance_id}`;
  return { branch: item.instance_id, given: ref, pristine: `${ref}~1`, patchIsReversed: true };
}

/** Where setup fetches task branches to in the bare cache: kept apart from any branch the remote has. */
export const TASK_BRANCH_REFS = "refs/hermes/tasks/";

/** `owner/name` under a git base URL: `https://github.com/` + `a/b` → `https://github.com/a/b.git`; file:// works. */
export function resolveRepoURL(baseURL: string, repo: string): string {
  const base = baseURL.endsWith("/") ? baseURL : `${baseURL}/`;
  return `${base}${repo}${repo.endsWith(".git") ? "" : ".git"}`;
}

/** The bare cache's file name for a repository: `owner__name`. */
export function repoCacheKey(repo: string): string {
  return repo
    .replace(/\.git$/, "")
    .replace("/", "__")
    .replace(/[^\w.-]/g, "_");
}

/**
 * Names a task's dependency environment in the sandbox cache: one per repository, commit-ish and install command
 * (so a changed command builds anew); empty when there is no install command.
 */
export function installEnvironmentKey(item: Pick<SweSmithItem, "repo" | "base_commit" | "instance_id">, installCommand: string): string {
  if (installCommand.trim() === "") return "";
  const hash = createHash("sha256").update(JSON.stringify([item.repo, taskCheckout(item).given, installCommand]));
  return `${repoCacheKey(item.repo)}-${hash.digest("hex").slice(0, 16)}`;
}

/** The worktree's directory in the slot workspace: the repository's name, as in the original. */
export function worktreeDirName(repo: string): string {
  return (
    repo
      .replace(/\.git$/, "")
      .split("/")
      .pop() ?? repo
  );
}

/** Sorted, de-duplicated union of FAIL_TO_PASS and PASS_TO_PASS, as the original runs them. */
export function testsToRun(item: Pick<SweSmithItem, "FAIL_TO_PASS" | "PASS_TO_PASS">): string[] {
  return [...new Set([...item.FAIL_TO_PASS, ...item.PASS_TO_PASS])].sort();
}

/** A relative path with no `.` or `..` parts (git stores no other kind). */
function isInsideRepository(path: string): boolean {
  return !path.startsWith("/") && !path.split("/").some((part) => part === "" || part === "." || part === "..");
}

/**
 * The files a git diff touches, read from each file's header (before its first hunk, so no content line is taken
 * for one): `diff --git a/x b/y`, `--- a/x` / `+++ b/y` (the only form for paths with spaces), `rename from/to`.
 * Quoted names (git's form for unusual bytes) are left out.
 */
export function patchedFiles(patch: string): string[] {
  const files = new Set<string>();
  let inHeader = true;
  for (const line of patch.split("\n")) {
    if (line.startsWith("diff --git ")) inHeader = true;
    else if (line.startsWith("@@")) inHeader = false;
    if (!inHeader) continue;
    const paths =
      /^diff --git a\/(\S+) b\/(\S+)$/.exec(line)?.slice(1) ??
      /^(?:--- a\/|\+\+\+ b\/|rename from |rename to )([^\t]+)/.exec(line)?.slice(1);
    for (const path of paths ?? []) files.add(path);
  }
  return [...files].sort();
}

/** The files the listed pytest node ids live in (`tests/a.py::test_x` → `tests/a.py`), sorted. */
export function testFiles(item: Pick<SweSmithItem, "FAIL_TO_PASS" | "PASS_TO_PASS">): string[] {
  return [...new Set(testProfile("pytest").files(testsToRun(item)))].sort();
}
