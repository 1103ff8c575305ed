/**
 * The bundled offline mini-dataset `swe-smith-mini`: SWE-smith-style tasks over three small Python libraries whose
 * sources are checked in under ./mini/repos. `prepareMiniDataset(dir)` turns them into git remotes and a JSONL file:
 *   <dir>/hermes-mini/<name>.git   bare remotes, one branch `task/<instance>` per task; its single (root) commit is
 *                                  the base commit with the bug injected, so the fix is in no history
 *   <dir>/swe-smith-mini.jsonl     rows with the original's fields; FAIL_TO_PASS / PASS_TO_PASS measured by running
 *                                  pytest before and after the gold patch (a real `git diff` of the fix)
 * Commits use fixed authors and dates, so base commits are the same on every machine. The rows are served with
 * repoBaseURL `file://<dir>/`, so setup takes exactly the bare-cache + checkout path a GitHub URL takes.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cp, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { z } from "zod";

const run = promisify(execFile);

export const MINI_DATASET_NAME = "swe-smith-mini";
export const MINI_OWNER = "hermes-mini";
const GENERATOR_VERSION = "1";
const JSONL_NAME = `${MINI_DATASET_NAME}.jsonl`;
const DATA_DIR = fileURLToPath(new URL("./mini/", import.meta.url));

const taskSpecs = z.array(
  z.object({
    instance_id: z.string().min(1),
    repo: z.string().min(1),
    file: z.string().min(1),
    find: z.string().min(1),
    replace: z.string(),
    problem_statement: z.string().min(1),
  }),
);
type TaskSpec = z.output<typeof taskSpecs>[number];

export interface MiniDataset {
  jsonlPath: string;
  repoBaseURL: string;
  /** Settings the swe-smith-oracle env needs for these rows; a job's own environment config overrides them. */
  environmentConfig: { repoBaseURL: string; installCommand: string };
  items: number;
}

/** Under the user's cache directory: `cacheHome` is XDG_CACHE_HOME when the CLI has one, else ~/.cache. */
export function defaultMiniDatasetDir(cacheHome: string = join(homedir(), ".cache")): string {
  return join(cacheHome, "hermes-rollouts", MINI_DATASET_NAME);
}

function describe(dir: string, items: number): MiniDataset {
  const repoBaseURL = `file://${dir.endsWith("/") ? dir : `${dir}/`}`;
  // No install step: the libraries need nothing beyond the sandbox's python3 + pytest (PyPI may be unreachable).
  return { jsonlPath: join(dir, JSONL_NAME), repoBaseURL, environmentConfig: { repoBaseURL, installCommand: "" }, items };
}

/** Idempotent and cheap when `dir` already holds this version of the data; safe to race (build, then rename). */
export async function prepareMiniDataset(dir: string, options: { python?: string } = {}): Promise<MiniDataset> {
  const stamp = await dataStamp();
  const existing = await readFile(join(dir, "stamp"), "utf8").catch(() => "");
  if (existing.startsWith(`${stamp} `)) return describe(dir, Number(existing.split(" ")[1]));

  const building = `${dir}.build-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const items = await build(building, options.python ?? "python3");
    await writeFile(join(building, "stamp"), `${stamp} ${items}\n`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, ".."), { recursive: true });
    await rename(building, dir).catch(async (error: unknown) => {
      // Another process finished first: keep its copy if it is this version.
      const theirs = await readFile(join(dir, "stamp"), "utf8").catch(() => "");
      if (!theirs.startsWith(`${stamp} `)) throw error;
    });
    return describe(dir, items);
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.parentPath.includes("__pycache__") && !e.name.endsWith(".pyc"))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

async function dataStamp(): Promise<string> {
  const hash = createHash("sha256").update(GENERATOR_VERSION);
  for (const file of await listFiles(DATA_DIR)) hash.update(`\0${file}\0`).update(await readFile(join(DATA_DIR, file)));
  return hash.digest("hex").slice(0, 16);
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: "hermes-rollouts",
  GIT_AUTHOR_EMAIL: "mini@hermes-rollouts.invalid",
  GIT_AUTHOR_DATE: "2026-01-01T00:00:00Z",
  GIT_COMMITTER_NAME: "hermes-rollouts",
  GIT_COMMITTER_EMAIL: "mini@hermes-rollouts.invalid",
  GIT_COMMITTER_DATE: "2026-01-01T00:00:00Z",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", ["-c", "init.defaultBranch=main", "-c", "core.autocrlf=false", ...args], {
    cwd,
    env: { ...process.env, ...GIT_ENV },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** Outcome per node id from `pytest -rA` (its short summary names every test). */
async function pytestOutcomes(cwd: string, python: string): Promise<Map<string, string>> {
  const result = await run(python, ["-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"], {
    cwd,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    maxBuffer: 16 * 1024 * 1024,
  }).catch((error: { stdout?: string; code?: unknown }) => {
    if (typeof error.stdout === "string" && error.code === 1) return { stdout: error.stdout }; // some tests failed
    throw new Error(`pytest did not run in ${cwd} (is python3-pytest installed?)`, { cause: error });
  });
  const outcomes = new Map<string, string>();
  for (const match of result.stdout.matchAll(/^(PASSED|FAILED|ERROR) (\S+::\S+)/gm)) outcomes.set(match[2] ?? "", match[1] ?? "");
  return outcomes;
}

function injectBug(source: string, task: TaskSpec): string {
  const first = source.indexOf(task.find);
  if (first < 0 || source.indexOf(task.find, first + 1) >= 0) {
    throw new Error(`mini task ${task.instance_id}: the text to replace must occur exactly once in ${task.file}`);
  }
  return source.slice(0, first) + task.replace + source.slice(first + task.find.length);
}

/** Builds one repository's remote and returns its rows; repositories build concurrently (pytest dominates). */
async function buildRepo(root: string, python: string, repo: string, tasks: readonly TaskSpec[]): Promise<string[]> {
  const work = join(root, ".work", repo);
  const remote = join(root, MINI_OWNER, `${repo}.git`);
  await cp(join(DATA_DIR, "repos", repo), work, { recursive: true, filter: (src) => !src.includes("__pycache__") });
  await git(work, "init", "-q");
  await git(work, "add", "-A");
  await git(work, "commit", "-q", "-m", `${repo}: fixed version (never published)`);
  const fixedOutcomes = await pytestOutcomes(work, python);
  const notPassing = [...fixedOutcomes].filter(([, outcome]) => outcome !== "PASSED");
  if (fixedOutcomes.size === 0 || notPassing.length > 0) throw new Error(`mini repo ${repo}: the fixed version must pass all its tests`);
  await mkdir(remote, { recursive: true });
  await git(remote, "init", "-q", "--bare");

  const rows: string[] = [];
  for (const task of tasks) {
    const branch = `task/${task.instance_id}`;
    await git(work, "checkout", "-q", "--orphan", branch, "main");
    const file = join(work, task.file);
    await writeFile(file, injectBug(await readFile(file, "utf8"), task));
    await git(work, "commit", "-q", "-a", "-m", `${repo} snapshot`);
    const baseCommit = (await git(work, "rev-parse", "HEAD")).trim();
    const patch = await git(work, "diff", "--no-color", "--no-ext-diff", "--src-prefix=a/", "--dst-prefix=b/", baseCommit, "main");
    const buggyOutcomes = await pytestOutcomes(work, python);
    const failToPass = [...fixedOutcomes.keys()].filter((id) => buggyOutcomes.get(id) !== "PASSED").sort();
    const passToPass = [...fixedOutcomes.keys()].filter((id) => buggyOutcomes.get(id) === "PASSED").sort();
    if (failToPass.length === 0) throw new Error(`mini task ${task.instance_id}: the injected bug breaks no test`);
    await git(work, "push", "-q", remote, `${branch}:refs/heads/${branch}`);
    await git(work, "checkout", "-q", "-f", "main");
    rows.push(
      JSON.stringify({
        instance_id: task.instance_id,
        repo: `${MINI_OWNER}/${repo}`,
        base_commit: baseCommit,
        problem_statement: task.problem_statement,
        FAIL_TO_PASS: failToPass,
        PASS_TO_PASS: passToPass,
        patch,
        created_at: GIT_ENV.GIT_COMMITTER_DATE,
      }),
    );
  }
  return rows;
}

async function build(root: string, python: string): Promise<number> {
  const tasks = taskSpecs.parse(JSON.parse(await readFile(join(DATA_DIR, "tasks.json"), "utf8")));
  const repos = [...new Set(tasks.map((t) => t.repo))];
  const rows = await Promise.all(
    repos.map((repo) =>
      buildRepo(
        root,
        python,
        repo,
        tasks.filter((t) => t.repo === repo),
      ),
    ),
  );
  await rm(join(root, ".work"), { recursive: true, force: true });
  await writeFile(join(root, JSONL_NAME), `${rows.flat().join("\n")}\n`);
  return rows.flat().length;
}
