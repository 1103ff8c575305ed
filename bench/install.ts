/**
 * npm run bench:install
 * The swe-smith-oracle setup on the local backend (slots under bubblewrap when it works here), over the bundled
 * mini-dataset served by git HTTP as a job's would be. Measures in one run:
 * - setup of a task whose commit and dependencies the sandbox already has vs a raw `git worktree add --detach` of the
 *   same commit from a bare repository on the host (the floor of making a checkout), one at a time and 4 at once:
 *   setupVsWorktreeAddRatio = setup p50 / worktree add p50 (goal <= 2); and vs that worktree add run as one
 *   command through the same slot layer (bubblewrap's start included), the floor of any setup that runs in a slot:
 *   setupVsWorktreeAddInSlotRatio;
 * - a repository's first trajectory vs its second, to the first agent turn (setup done, prompt built), each on a
 *   fresh slot; the first fetches and installs (an offline editable install into a virtualenv, since no package
 *   index may be reachable here), the second finds both in the sandbox's cache:
 *   secondVsFirstTrajectoryRatio = first / second (goal >= 10).
 * The last line is one JSON object with the headline figures.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LocalBackend } from "../src/backends/local/backend.ts";
import type { SandboxRef, SandboxTemplate } from "../src/backends/types.ts";
import { getEnvironment, type SlotExec } from "../src/envs/index.ts";
import { startGitHttpServer } from "../src/envs/git-http.ts";
import { prepareMiniDataset } from "../src/envs/swe-smith-oracle/mini.ts";

const run = promisify(execFile);
const REPEATS = 20;
const CONCURRENCY = 4;
const TRAJECTORY_PAIRS = 3;
/** Offline: a virtualenv over the system's setuptools and pytest, the package installed editable. */
const INSTALL_COMMAND =
  'python3 -m venv --system-site-packages "$HERMES_VENV" && ' +
  '"$HERMES_VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --no-index -e .';

const percentile = (samples: number[], p: number): number => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

const root = await mkdtemp(join(tmpdir(), "hermes-bench-install-"));
const backend = await LocalBackend.open({ rootDir: join(root, "sandboxes") });
const mini = await prepareMiniDataset(join(root, "dataset"));
const reposDir = fileURLToPath(mini.repoBaseURL);
const git = await startGitHttpServer(reposDir);
try {
  const rows = (await readFile(mini.jsonlPath, "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const row = rows.find((r) => r.repo === "hermes-mini/textkit");
  if (row === undefined) throw new Error("the mini-dataset has no textkit task");
  const env = getEnvironment("swe-smith-oracle", { repoBaseURL: git.url, installCommand: INSTALL_COMMAND });
  const item = env.parseItem(row);
  const commit = String(row.base_commit);

  const template: SandboxTemplate = {
    pool: "bench-install",
    image: "host",
    slots: CONCURRENCY * 2,
    cpu: 1,
    memoryMiB: 512,
    lifetimeSeconds: 3600,
    idleTimeoutSeconds: 0,
    templateHash: "bench-install-v1",
  };
  const slotOf = (sandbox: SandboxRef, slot: number): SlotExec => ({
    sandbox: sandbox.id,
    slot,
    exec: (request) => backend.exec(sandbox, { ...request, slot }),
    readFile: (path) => backend.readFile(sandbox, slot, path),
    writeFile: (path, data) => backend.writeFile(sandbox, slot, path, data),
  });
  /** Time to the first agent turn: setup done and the prompt built, on a freshly reset slot. */
  const toFirstTurn = async (sandbox: SandboxRef, slot: number): Promise<number> => {
    await backend.resetSlot(sandbox, slot);
    return timed(async () => {
      await env.setup(item, slotOf(sandbox, slot));
      env.prompt(item);
    });
  };

  // First vs second trajectory of the repository, each pair in a sandbox of its own.
  const firstMs: number[] = [];
  const secondMs: number[] = [];
  for (let pair = 0; pair < TRAJECTORY_PAIRS; pair++) {
    const sandbox = await backend.create(`pair-${pair}`, template);
    firstMs.push(await toFirstTurn(sandbox, 0));
    secondMs.push(await toFirstTurn(sandbox, 1));
  }

  // Warm setup vs the raw worktree add, one at a time and CONCURRENCY at once.
  const warm = await backend.create("warm", template);
  await toFirstTurn(warm, 0);
  const bare = join(root, "raw.git");
  await run("git", ["clone", "-q", "--bare", join(reposDir, "hermes-mini", "textkit.git"), bare]);
  let added = 0;
  const worktreeAdd = () =>
    timed(() => run("git", ["-C", bare, "worktree", "add", "-q", "--detach", join(root, "raw", String(added++)), commit]));
  const inSlot = (command: string) => async () => {
    const result = await backend.exec(warm, { slot: 0, command, timeoutMs: 60_000, trusted: true });
    if (result.exitCode !== 0) throw new Error(`${command}: ${result.stderr}`);
  };
  await inSlot(`git clone -q --bare ${git.url}hermes-mini/textkit.git "$HERMES_CACHE_DIR/raw.git"`)();
  const worktreeAddInSlot = () =>
    timed(inSlot(`git -C "$HERMES_CACHE_DIR/raw.git" worktree add -q --detach "$HERMES_CACHE_DIR/raw/${added++}" ${commit}`));
  const setupOn = (slot: number) => toFirstTurn(warm, slot);
  // Rounds interleave what is compared, so a change in the machine's load meets all of them alike.
  const rawOne: number[] = [];
  const inSlotOne: number[] = [];
  const setupOne: number[] = [];
  const rawMany: number[] = [];
  const setupMany: number[] = [];
  const atOnce = (once: (index: number) => Promise<number>) => Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => once(i)));
  for (let round = 0; round < REPEATS; round++) {
    rawOne.push(await worktreeAdd());
    inSlotOne.push(await worktreeAddInSlot());
    setupOne.push(await setupOn(0));
    rawMany.push(...(await atOnce(worktreeAdd)));
    setupMany.push(...(await atOnce(setupOn)));
  }

  const p50 = (samples: number[]) => round(percentile(samples, 50));
  const ratio = (a: number[], b: number[]) => round(percentile(a, 50) / percentile(b, 50), 2);
  const isolation = backend.isolation.isolation;
  console.log(`slots: ${isolation}; repository hermes-mini/textkit; ${REPEATS} rounds`);
  console.log(
    `setup (commit and dependencies cached) p50 ${p50(setupOne)} ms vs git worktree add p50 ${p50(rawOne)} ms -> ` +
      `${ratio(setupOne, rawOne)}x, vs it as one slot command p50 ${p50(inSlotOne)} ms -> ${ratio(setupOne, inSlotOne)}x; ` +
      `${CONCURRENCY} at once: ${p50(setupMany)} ms vs ${p50(rawMany)} ms -> ${ratio(setupMany, rawMany)}x`,
  );
  console.log(
    `to the first agent turn: first trajectory of the repository p50 ${p50(firstMs)} ms (fetch + install), ` +
      `second p50 ${p50(secondMs)} ms -> ${ratio(firstMs, secondMs)}x faster`,
  );
  console.log(
    JSON.stringify({
      isolation,
      setupMsP50: p50(setupOne),
      worktreeAddMsP50: p50(rawOne),
      setupVsWorktreeAddRatio: ratio(setupOne, rawOne),
      worktreeAddInSlotMsP50: p50(inSlotOne),
      setupVsWorktreeAddInSlotRatio: ratio(setupOne, inSlotOne),
      setupMsP50Concurrent: p50(setupMany),
      worktreeAddMsP50Concurrent: p50(rawMany),
      setupVsWorktreeAddRatioConcurrent: ratio(setupMany, rawMany),
      firstTrajectoryMsP50: p50(firstMs),
      secondTrajectoryMsP50: p50(secondMs),
      secondVsFirstTrajectoryRatio: ratio(firstMs, secondMs),
    }),
  );
} finally {
  await git.close();
  await rm(root, { recursive: true, force: true, maxRetries: 3 });
}
