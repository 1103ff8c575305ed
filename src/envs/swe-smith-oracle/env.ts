/**
 * The `swe-smith-oracle` environment: fix a repository at a task's commit until its listed pytest node ids pass.
 * Rows are told apart by their columns (item.ts): with `base_commit` (the original's format, SWE-bench's), or a
 * SWE-smith row as published, whose task is a branch of its mirror repository.
 */
import { z } from "zod";
import { chunk, shellQuote, tail } from "../shell.ts";
import {
  asInfrastructureError,
  parseRow,
  type Environment,
  type EnvironmentFactory,
  type PromptMessages,
  type SetupResult,
  type SlotExec,
  type Verification,
} from "../types.ts";
import {
  patchedFiles,
  repoCacheKey,
  resolveRepoURL,
  sweSmithItemSchema,
  taskCheckout,
  testsToRun,
  worktreeDirName,
  type SweSmithItem,
} from "./item.ts";
import { profileOfLogParser, TEST_PROFILE_NAMES, testCommandLine, testProfile, type TestProfile, type TestTargets } from "./profiles.ts";
import { CHECKOUT_SCRIPT, FETCH_SCRIPT, inWorktree, RESTORE_TESTS_SCRIPT, TEST_PATCH_DOES_NOT_APPLY, testChunkCommand } from "./scripts.ts";
import type { ExecRequest } from "../../backends/types.ts";
import { InfrastructureError, InvalidItemError } from "../../base/errors.ts";

/** The original's install step: a local .venv with the package installed editable, plus pytest. */
export const DEFAULT_INSTALL_COMMAND =
  "python3 -m venv .venv && . .venv/bin/activate && pip install -q -U pip setuptools wheel && pip install -q -e . && pip install -q pytest";

export const sweSmithConfigSchema = z
  .object({
    repoBaseURL: z.string().min(1).default("https://github.com/"),
    /** Empty: no install step (the image already holds the dependencies). */
    installCommand: z.string().default(DEFAULT_INSTALL_COMMAND),
    /** How the listed tests are run and their log read (profiles.ts); a row's install_config can name another. */
    testProfile: z.enum(TEST_PROFILE_NAMES).default("pytest"),
    /** Unset: the profile's own (pytest: the original's `python -m pytest -q`, spelled for python3-only Debian). */
    testCommand: z.string().min(1).optional(),
    testChunkSize: z.int().min(1).default(50),
    testTimeoutSeconds: z.number().positive().default(600),
    installTimeoutSeconds: z.number().positive().default(600),
    setupTimeoutSeconds: z.number().positive().default(600),
    promptMode: z.enum(["problem_statement", "problem_statement+text"]).default("problem_statement"),
    /**
     * After the original's python_only: true leaves out (and counts) rows whose tests no profile can run; false keeps
     * them, to fail as invalid items.
     */
    pythonOnly: z.boolean().default(true),
  })
  .strict();

export type SweSmithConfig = z.output<typeof sweSmithConfigSchema>;

const OUTPUT_TAIL_CHARS = 2000;
const FAILED_IDS_KEPT = 20;
const EXEC_OUTPUT_BYTES = 256 * 1024;

/** How a row's tests run: its profile, command and targets, or why none can run them. */
type TestPlan = { profile: TestProfile; command: string; targets: TestTargets } | { unrunnable: string };

/** The job's profile and command, unless the row's install_config (SWE-rebench) names its own. */
export function testPlan(item: SweSmithItem, config: SweSmithConfig): TestPlan {
  const logParser = item.install_config?.log_parser;
  const name = logParser === undefined ? config.testProfile : profileOfLogParser(logParser);
  if (name === undefined) return { unrunnable: `install_config.log_parser ${logParser} has no test profile` };
  const profile = testProfile(name);
  const command = item.install_config?.test_cmd ?? (name === config.testProfile ? config.testCommand : undefined) ?? profile.defaultCommand;
  const targets = profile.targets(testsToRun(item), patchedFiles(item.test_patch ?? ""));
  if (targets === undefined) return { unrunnable: `the ${name} test profile cannot run its tests (${testsToRun(item)[0]}, ...)` };
  return { profile, command, targets };
}

const SYSTEM_PROMPT =
  "You are an autonomous software engineer with a Linux shell (the `terminal` tool). Work only through " +
  "non-interactive commands. Inspect before you edit, make the smallest change that fixes the problem, and " +
  "finish with a short summary of what you changed.";

export function sweSmithPrompt(item: SweSmithItem, promptMode: SweSmithConfig["promptMode"]): PromptMessages {
  const dir = worktreeDirName(item.repo);
  const at = item.base_commit ? ` at commit ${item.base_commit}` : "";
  const sections = [
    `Fix the repository so that its tests pass.`,
    `Repository: ${item.repo}${at}, checked out in ./${dir} (your working directory is its parent).`,
    `Inspect the code first. If you need packages, use a local virtualenv (.venv in ./${dir}). Run only non-interactive commands.`,
    `Problem statement:\n${item.problem_statement.trim()}`,
  ];
  if (promptMode === "problem_statement+text" && item.text) sections.push(`Context:\n${item.text.trim()}`);
  sections.push(
    `These tests must pass:\n${testsToRun(item)
      .map((id) => `- ${id}`)
      .join("\n")}`,
  );
  sections.push("When you are done, summarise your change.");
  return { system: SYSTEM_PROMPT, user: sections.join("\n\n") };
}

export class SweSmithOracleEnvironment implements Environment<SweSmithItem> {
  readonly name = "swe-smith-oracle";
  readonly itemSchema = sweSmithItemSchema;
  readonly zeroWithoutToolCalls = true;
  readonly config: SweSmithConfig;

  constructor(config: SweSmithConfig) {
    this.config = config;
  }

  get longestStepSeconds(): number {
    const { setupTimeoutSeconds, installTimeoutSeconds, testTimeoutSeconds } = this.config;
    return Math.max(setupTimeoutSeconds, installTimeoutSeconds, testTimeoutSeconds);
  }

  parseItem(row: unknown): SweSmithItem {
    return parseRow(this.name, this.itemSchema, row);
  }

  /** A row that does not parse is kept, so it fails visibly as an invalid item instead of vanishing. */
  keepsRow(row: unknown): boolean {
    if (!this.config.pythonOnly) return true;
    const parsed = this.itemSchema.safeParse(row);
    return !parsed.success || !("unrunnable" in testPlan(parsed.data, this.config));
  }

  itemId(item: SweSmithItem): string {
    return item.instance_id;
  }

  prompt(item: SweSmithItem): PromptMessages {
    return sweSmithPrompt(item, this.config.promptMode);
  }

  /**
   * Fetches the task's commit into the shared cache as a trusted step (slots see the cache read-only), then clones
   * it into the workspace as a slot command. Both share the setup timeout.
   */
  async setup(item: SweSmithItem, slot: SlotExec, signal?: AbortSignal): Promise<SetupResult> {
    const started = performance.now();
    const deadline = started + this.config.setupTimeoutSeconds * 1000;
    const workdir = worktreeDirName(item.repo);
    const checkout = taskCheckout(item);
    const step = async (request: Pick<ExecRequest, "command" | "env" | "trusted">) => {
      signal?.throwIfAborted();
      const timeoutMs = Math.max(1, deadline - performance.now());
      const result = await slot.exec({ ...request, timeoutMs, maxOutputBytes: EXEC_OUTPUT_BYTES }).catch((error: unknown) => {
        throw asInfrastructureError("setup", error);
      });
      if (result.exitCode === 0) return result.stdout.trim();
      const why = result.timedOut ? `timed out after ${this.config.setupTimeoutSeconds}s` : `exit ${result.exitCode}`;
      throw new InfrastructureError(
        "setup",
        `setup of ${item.instance_id} (${item.repo}@${checkout.branch ?? checkout.given}) failed: ${why}: ` +
          tail(result.stderr, OUTPUT_TAIL_CHARS),
      );
    };
    const cacheKey = repoCacheKey(item.repo);
    const commit = await step({
      command: ["bash", "-c", FETCH_SCRIPT],
      env: {
        REPO_URL: resolveRepoURL(this.config.repoBaseURL, item.repo),
        CHECKOUT: checkout.given,
        TASK_BRANCH: checkout.branch ?? "",
        CACHE_KEY: cacheKey,
      },
      trusted: true,
    });
    await step({ command: ["bash", "-c", CHECKOUT_SCRIPT], env: { CACHE_KEY: cacheKey, COMMIT: commit, WORKTREE: workdir } });
    await this.install(item, slot, workdir, signal);
    return { workdir, durationMs: Math.round(performance.now() - started) };
  }

  /**
   * The install step runs on the task's own tree, before the agent starts (who then works with the dependencies), so
   * its failure is never the model's: an unreachable package index or a missing system library is an
   * infrastructure failure, retried on another slot. Run after the agent instead, a model could dodge its 0.0 by
   * breaking the install. The default install is editable, so verify tests the agent's code without reinstalling.
   */
  private async install(item: SweSmithItem, slot: SlotExec, workdir: string, signal?: AbortSignal): Promise<void> {
    if (this.config.installCommand.trim() === "") return;
    signal?.throwIfAborted();
    const timeoutSeconds = this.config.installTimeoutSeconds;
    const result = await slot
      .exec({
        command: inWorktree(workdir, this.config.installCommand),
        timeoutMs: timeoutSeconds * 1000,
        maxOutputBytes: EXEC_OUTPUT_BYTES,
        // Package indexes are outside the slot's own network namespace; the agent has not run yet.
        hostNetwork: true,
      })
      .catch((error: unknown) => {
        throw asInfrastructureError("setup", error);
      });
    if (result.exitCode !== 0) {
      const why = result.timedOut ? `timed out after ${timeoutSeconds}s` : `exit ${result.exitCode}`;
      const output = tail(result.stdout + result.stderr, OUTPUT_TAIL_CHARS);
      throw new InfrastructureError("setup", `install for ${item.instance_id} failed: ${why}: ${output}`);
    }
  }

  /**
   * Restores the task's test files to their pristine content (their edits are listed as `testFilesChanged`) and
   * applies test_patch, then runs the listed tests in chunks (the install ran at setup); 1.0 only when every listed
   * test passes.
   * A test_patch that does not apply to its own commit is a bad row (InvalidItemError): failed, never scored.
   */
  async verify(item: SweSmithItem, slot: SlotExec, signal?: AbortSignal): Promise<Verification> {
    const started = performance.now();
    const plan = testPlan(item, this.config);
    if ("unrunnable" in plan) throw new InvalidItemError(`${item.instance_id}: ${plan.unrunnable}`);
    const { profile, command } = plan;
    const worktree = worktreeDirName(item.repo);
    const checkout = taskCheckout(item);
    const finish = (passed: boolean, details: Record<string, unknown>): Verification => ({
      score: passed ? 1 : 0,
      passed,
      details: { ...details, testFilesChanged },
      durationMs: Math.round(performance.now() - started),
    });
    type ExecOptions = Pick<ExecRequest, "env" | "stdin" | "maxOutputBytes">;
    const run = async (command: string, timeoutSeconds: number, options: ExecOptions = {}) => {
      signal?.throwIfAborted();
      const request = { command, timeoutMs: timeoutSeconds * 1000, maxOutputBytes: EXEC_OUTPUT_BYTES, ...options };
      return slot.exec(request).catch((error: unknown) => {
        throw asInfrastructureError("verify", error);
      });
    };

    // A trusted step before anything of the agent's runs: the tests come from git, test_patch goes on top.
    const testPatch = item.test_patch ?? "";
    const restore = await run(RESTORE_TESTS_SCRIPT, this.config.setupTimeoutSeconds, {
      env: {
        CACHE_KEY: repoCacheKey(item.repo),
        WORKTREE: worktree,
        GIVEN: checkout.given,
        PRISTINE: checkout.pristine,
        TEST_FILES: [...new Set([...profile.files(testsToRun(item)), ...patchedFiles(testPatch)])].join("\n"),
        APPLY_TEST_PATCH: testPatch.trim() === "" ? "" : "1",
      },
      stdin: testPatch,
    });
    if (restore.exitCode === TEST_PATCH_DOES_NOT_APPLY) {
      const why = tail(restore.stderr, OUTPUT_TAIL_CHARS);
      throw new InvalidItemError(`${item.instance_id}: test_patch does not apply to ${checkout.pristine}: ${why}`);
    }
    if (restore.exitCode !== 0) {
      const why = tail(restore.stderr, OUTPUT_TAIL_CHARS);
      throw new InfrastructureError("verify", `restoring the test files of ${item.instance_id} failed: ${why}`);
    }
    const testFilesChanged = [...restore.stdout.matchAll(/^changed\t(.+)$/gm)].map((match) => match[1] ?? "");

    // Exact targets (one per id) run in chunks; test modules (Django's from test_patch) run once, all ids read back.
    const ids = testsToRun(item);
    const runs = plan.targets.exact
      ? chunk(ids, this.config.testChunkSize).map((chunkIds) => ({ ids: chunkIds, targets: profile.targets(chunkIds, []) ?? plan.targets }))
      : [{ ids, targets: plan.targets }];
    for (const [index, { ids: runIds, targets }] of runs.entries()) {
      // Room for the result line of every listed test on top of whatever else the runner prints (the tail is kept).
      const summaryBytes = runIds.reduce((bytes, id) => bytes + Buffer.byteLength(id) + 16, 0);
      const result = await run(testChunkCommand(worktree, testCommandLine(command, profile, targets)), this.config.testTimeoutSeconds, {
        maxOutputBytes: EXEC_OUTPUT_BYTES + summaryBytes,
      });
      const log = `${result.stdout}\n${result.stderr}`;
      const notPassed = profile.unpassed(log, runIds);
      if ((targets.exact && result.exitCode !== 0) || result.timedOut || notPassed.length > 0) {
        return finish(false, {
          phase: "tests",
          profile: profile.name,
          chunks: runs.length,
          failedChunk: index,
          exitCode: result.exitCode,
          timedOut: result.timedOut,
          failed: profile.failed(log, FAILED_IDS_KEPT),
          ...(notPassed.length > 0 ? { notPassed: notPassed.slice(0, FAILED_IDS_KEPT) } : {}),
          output: tail(result.stdout + result.stderr, OUTPUT_TAIL_CHARS),
        });
      }
    }
    return finish(true, { phase: "tests", profile: profile.name, chunks: runs.length, tests: ids.length });
  }

  /**
   * Looks at the checkout, then applies the gold patch (base64, so any patch text survives the shell); a SWE-smith
   * row's patch creates the bug, so it is applied in reverse.
   */
  oracleCommands(item: SweSmithItem): string[] | undefined {
    if (!item.patch) return undefined;
    const cd = `cd "$HERMES_WORKSPACE"/${shellQuote(worktreeDirName(item.repo))}`;
    const encoded = Buffer.from(item.patch, "utf8").toString("base64");
    const apply = taskCheckout(item).patchIsReversed ? "git apply --reverse" : "git apply";
    return [
      `${cd} && git status --short && git log -1 --oneline`,
      `${cd} && echo ${encoded} | base64 -d | ${apply} --whitespace=nowarn - && git status --short`,
    ];
  }
}

export const sweSmithOracleFactory: EnvironmentFactory<SweSmithConfig, SweSmithItem> = {
  name: "swe-smith-oracle",
  configSchema: sweSmithConfigSchema,
  fromConfig: (config) => new SweSmithOracleEnvironment(config),
};
