/**
 * The swe-smith-oracle env end to end on the generated mini-dataset: real git remotes (file://), the shared bare
 * cache + per-slot worktree, real pytest. Slots run under bubblewrap when it works here (as the local backend
 * runs them), on the host otherwise.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { InfrastructureError } from "../../../src/base/errors.ts";
import { getEnvironment, type Environment, type SetupResult } from "../../../src/envs/index.ts";
import { prepareMiniDataset, type MiniDataset } from "../../../src/envs/swe-smith-oracle/mini.ts";
import { bwrapWorks, ProcessSlot, type Isolation } from "./process-slot.ts";

const isolation: Isolation = bwrapWorks() ? "bwrap" : "none";
let root: string;
let dataset: MiniDataset;
let rows: Record<string, unknown>[];
let env: Environment;
let sandboxCount = 0;

function newSandbox(): (slot: number) => Promise<ProcessSlot> {
  const sandboxRoot = join(root, `sandbox-${sandboxCount++}`);
  const sandbox = `sb-${sandboxCount}`;
  return (slot) => new ProcessSlot({ root: sandboxRoot, sandbox, slot, isolation, readOnlyPaths: [join(root, "dataset")] }).prepare();
}

async function runOracle(slot: ProcessSlot, item: unknown): Promise<void> {
  for (const command of env.oracleCommands(item) ?? []) {
    const result = await slot.exec({ command, timeoutMs: 30_000 });
    assert.equal(result.exitCode, 0, `oracle command failed: ${result.stderr}`);
  }
}

/**
 * The worktree as git sees it from inside its slot (its .git file names /cache paths under bwrap): its HEAD, and
 * whether its index matches its files. Two slots sharing one worktree record would show another slot's HEAD.
 */
async function checkout(slot: ProcessSlot, dir: string): Promise<{ head: string; clean: boolean }> {
  const result = await slot.exec({ command: `cd ${dir} && git rev-parse HEAD && git status --porcelain`, timeoutMs: 10_000 });
  assert.equal(result.exitCode, 0, result.stderr);
  const [head = "", ...changes] = result.stdout.trim().split("\n");
  return { head, clean: changes.length === 0 };
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), "hermes-envs-swe-"));
  dataset = await prepareMiniDataset(join(root, "dataset"));
  rows = (await readFile(dataset.jsonlPath, "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  env = getEnvironment("swe-smith-oracle", dataset.environmentConfig);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe(`swe-smith-oracle on the mini-dataset (slots: ${isolation})`, () => {
  test("the dataset has at least 6 tasks with gold patches and failing tests", () => {
    assert.ok(rows.length >= 6);
    for (const row of rows) {
      const item = env.parseItem(row) as { FAIL_TO_PASS: string[]; patch?: string };
      assert.ok(item.FAIL_TO_PASS.length > 0);
      assert.match(item.patch ?? "", /^diff --git a\//);
    }
  });

  test("every task: setup alone scores 0.0, setup + gold patch scores 1.0", async () => {
    const slotOf = newSandbox();
    for (const [index, row] of rows.entries()) {
      const item = env.parseItem(row);
      const slot = await slotOf(index);
      const setup = await env.setup(item, slot);
      const unsolved = await env.verify(item, slot);
      assert.deepEqual([unsolved.score, unsolved.passed, unsolved.details.phase], [0, false, "tests"], env.itemId(item));
      const failed = unsolved.details.failed as string[];
      const expected = (item as { FAIL_TO_PASS: string[] }).FAIL_TO_PASS;
      assert.ok(failed.length > 0 && failed.every((id) => expected.includes(id)), `${env.itemId(item)}: ${failed}`);

      await runOracle(slot, item);
      const solved = await env.verify(item, slot);
      assert.equal(solved.score, 1, `${env.itemId(item)}: ${JSON.stringify(solved.details)}`);
      assert.equal(solved.passed, true);
      assert.equal((await checkout(slot, setup.workdir)).head, (item as { base_commit: string }).base_commit);
    }
  });

  test("two slots of one sandbox share one bare cache; a reset slot sets up again without breaking the other", async () => {
    const slotOf = newSandbox();
    const [first, second] = await Promise.all([slotOf(0), slotOf(1)]);
    const [itemA, itemB] = rows.filter((r) => r.repo === "hermes-mini/textkit").map((r) => env.parseItem(r) as { base_commit: string });
    assert.ok(itemA && itemB);
    const [{ workdir }] = await Promise.all([env.setup(itemA, first), env.setup(itemB, second)]);
    assert.deepEqual(
      (await readdir(join(first.cache, "repos"))).filter((n) => n.endsWith(".git")),
      ["hermes-mini__textkit.git"],
    );
    assert.deepEqual(await checkout(first, workdir), { head: itemA.base_commit, clean: true });
    assert.deepEqual(await checkout(second, workdir), { head: itemB.base_commit, clean: true });

    await first.reset();
    await env.setup(itemA, first); // same path, fresh workspace
    assert.deepEqual(await checkout(first, workdir), { head: itemA.base_commit, clean: true });
    assert.deepEqual(await checkout(second, workdir), { head: itemB.base_commit, clean: true }, "the other slot is untouched");
    await runOracle(second, itemB);
    assert.equal((await env.verify(itemB, second)).score, 1);
    assert.equal((await env.verify(itemA, first)).score, 0, "the unsolved slot still fails");

    await env.setup(itemA, second); // again in the same slot without a reset
    await runOracle(second, itemA);
    assert.equal((await env.verify(itemA, second)).score, 1);
  });

  test("a fix with the same size and mtime second as the buggy file is still seen (no stale bytecode)", async () => {
    // Python trusts a __pycache__ entry whose recorded source mtime (whole seconds) and size match: a one-token
    // fix applied within the second of the checkout used to be scored against the bug's bytecode.
    const slot = await newSandbox()(0);
    const item = env.parseItem(rows.find((r) => r.instance_id === "hermes-mini__statkit.variance_denominator"));
    const { workdir } = await env.setup(item, slot);
    assert.equal((await env.verify(item, slot)).score, 0);
    const agentRun = await slot.exec({ command: `cd ${workdir} && python3 -m pytest -q; ls */__pycache__/*.pyc`, timeoutMs: 30_000 });
    assert.match(agentRun.stdout, /stats\.cpython-\S+\.pyc/, "precondition: the agent's own test run left bytecode");
    const file = `${workdir}/${/^diff --git a\/(\S+)/.exec((item as { patch: string }).patch)?.[1]}`;
    const stat = async () => (await slot.exec({ command: `stat -c '%Y %s' ${file}`, timeoutMs: 10_000 })).stdout.trim();
    const [mtime, size] = (await stat()).split(" ");
    await runOracle(slot, item);
    await slot.exec({ command: `touch -d @${mtime} ${file}`, timeoutMs: 10_000 });
    assert.equal(await stat(), `${mtime} ${size}`, "precondition: the fixed file looks unchanged to a timestamp check");
    const solved = await env.verify(item, slot);
    assert.equal(solved.score, 1, JSON.stringify(solved.details));
  });

  test("a 'fix' that only loosens the failing tests' assertions scores 0.0 and is listed; gold still 1.0", async () => {
    const slot = await newSandbox()(0);
    const item = env.parseItem(rows.find((r) => r.instance_id === "hermes-mini__statkit.median_unsorted"));
    const { workdir } = await env.setup(item, slot);
    const testFile = "tests/test_stats.py";
    const loosen = await slot.exec({
      command: `cd ${workdir} && sed -i 's/^\\( *\\)assert /\\1assert True or /' ${testFile}`,
      timeoutMs: 10_000,
    });
    assert.equal(loosen.exitCode, 0, loosen.stderr);
    const agentRun = await slot.exec({
      command: `cd ${workdir} && python3 -m pytest -q -p no:cacheprovider ${testFile}`,
      timeoutMs: 30_000,
    });
    assert.equal(agentRun.exitCode, 0, `precondition: the loosened tests pass in the agent's worktree: ${agentRun.stdout}`);

    const hacked = await env.verify(item, slot);
    assert.equal(hacked.score, 0, JSON.stringify(hacked.details));
    assert.deepEqual(hacked.details.testFilesChanged, [testFile]);
    assert.equal((await slot.exec({ command: `cd ${workdir} && git diff --quiet -- ${testFile}`, timeoutMs: 10_000 })).exitCode, 0);

    await runOracle(slot, item);
    const solved = await env.verify(item, slot);
    assert.deepEqual([solved.score, solved.details.testFilesChanged], [1, []], JSON.stringify(solved.details));
  });

  test("pytest exiting 0 with listed tests skipped by a conftest scores 0.0, naming them", async () => {
    const slot = await newSandbox()(0);
    const item = env.parseItem(rows[0]) as { FAIL_TO_PASS: string[] };
    const { workdir } = await env.setup(item, slot);
    await runOracle(slot, item);
    const skipAll =
      "import pytest\ndef pytest_collection_modifyitems(items):\n    for item in items:\n        item.add_marker(pytest.mark.skip)\n";
    await slot.writeFile(`${workdir}/conftest.py`, skipAll);
    const result = await env.verify(item, slot);
    assert.deepEqual([result.score, result.details.exitCode], [0, 0], JSON.stringify(result.details));
    assert.ok(
      item.FAIL_TO_PASS.every((id) => (result.details.notPassed as string[]).includes(id)),
      JSON.stringify(result.details),
    );
  });

  test("an unreachable commit is an infrastructure error, not a score", async () => {
    const slot = await newSandbox()(0);
    const item = env.parseItem({ ...rows[0], base_commit: "0123456789abcdef0123456789abcdef01234567" });
    await assert.rejects(env.setup(item, slot), (error: unknown) => error instanceof InfrastructureError && error.source === "setup");
  });

  test("a chunk that hits its timeout scores 0.0 with timedOut", async () => {
    const slow = getEnvironment("swe-smith-oracle", {
      ...dataset.environmentConfig,
      testCommand: "sleep 5; true",
      testTimeoutSeconds: 0.5,
    });
    const slot = await newSandbox()(0);
    const item = slow.parseItem(rows[0]);
    await slow.setup(item, slot);
    const result = await slow.verify(item, slot);
    assert.deepEqual([result.score, result.details.timedOut, result.details.exitCode], [0, true, 124]);
  });

  test("the install runs at setup, before the agent: its failure is an infrastructure failure, never a 0.0", async () => {
    const broken = getEnvironment("swe-smith-oracle", { ...dataset.environmentConfig, installCommand: "echo no index >&2; exit 3" });
    const slot = await newSandbox()(0);
    const item = broken.parseItem(rows[0]);
    await assert.rejects(
      broken.setup(item, slot),
      (error: unknown) =>
        error instanceof InfrastructureError && error.source === "setup" && /install .*exit 3: no index/.test(error.message),
    );
  });

  test("an agent that breaks the install after setup cannot dodge its score: verify does not reinstall", async () => {
    const installs = getEnvironment("swe-smith-oracle", {
      ...dataset.environmentConfig,
      installCommand: 'test -f pyproject.toml && python3 -m venv --without-pip "$HERMES_VENV"',
    });
    const slot = await newSandbox()(0);
    const item = installs.parseItem(rows[0]);
    const { workdir } = await installs.setup(item, slot);
    const installed = await slot.exec({ command: `test -x ${workdir}/.venv/bin/python`, timeoutMs: 5000 });
    assert.equal(installed.exitCode, 0, "the install ran at setup, in the task's tree, and the slot has its .venv");
    await slot.exec({ command: `rm ${workdir}/pyproject.toml`, timeoutMs: 5000 });
    const result = await installs.verify(item, slot);
    assert.equal(result.score, 0);
  });

  test("dependencies install once per sandbox and commit: concurrent first trajectories share an install, later ones skip it", async () => {
    // Offline (no package index here): a virtualenv over the system's setuptools and pytest, the package editable.
    const installCommand =
      'echo "$PWD" >> "$HERMES_CACHE_DIR/installs.log" && python3 -m venv --system-site-packages "$HERMES_VENV" && ' +
      '"$HERMES_VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --no-index -e .';
    const installs = getEnvironment("swe-smith-oracle", { ...dataset.environmentConfig, installCommand });
    const slotOf = newSandbox();
    const slots = await Promise.all([slotOf(0), slotOf(1), slotOf(2)]);
    const [row, other] = rows.filter((r) => r.repo === "hermes-mini/textkit");
    const item = installs.parseItem(row);
    const [{ workdir }] = (await Promise.all(slots.map((slot) => installs.setup(item, slot)))) as [SetupResult];
    const log = () => readFile(join(slots[0]!.cache, "installs.log"), "utf8").then((text) => text.trim().split("\n"));
    // Under bwrap every slot sees its worktree at /workspace/<name>, so one editable install serves them all.
    assert.equal((await log()).length, isolation === "bwrap" ? 1 : 3, "one install per workspace path, not one per trajectory");

    await slots[0]!.reset();
    await installs.setup(item, slots[0]!);
    assert.equal((await log()).length, isolation === "bwrap" ? 1 : 3, "a second trajectory of the commit skips the install");
    await installs.setup(installs.parseItem(other), slots[0]!);
    assert.equal((await log()).length, isolation === "bwrap" ? 2 : 4, "another commit gets its own");

    // The shared install imports each slot's own tree: one slot's fix is not another's.
    const importedFrom = `cd ${workdir} && .venv/bin/python -c 'import textkit; print(textkit.__file__)'`;
    const first = await slots[1]!.exec({ command: importedFrom, timeoutMs: 10_000 });
    assert.equal(first.stdout.trim(), join(slots[1]!.workspaceSeen, workdir, "textkit", "__init__.py"), first.stderr);
    await runOracle(slots[1]!, item);
    assert.deepEqual([(await installs.verify(item, slots[1]!)).score, (await installs.verify(item, slots[2]!)).score], [1, 0]);
    if (isolation === "bwrap") {
      const write = await slots[2]!.exec({ command: `touch ${workdir}/.venv/bin/mine`, timeoutMs: 5000 });
      assert.notEqual(write.exitCode, 0, "a slot cannot change the shared environment");
    }
  });

  test("a failed install is an infrastructure failure and is not kept: the next setup installs again", async () => {
    const installCommand =
      'echo try >> "$HERMES_CACHE_DIR/tries.log"; test -f "$HERMES_CACHE_DIR/index-up" || { echo no index >&2; exit 3; }';
    const flaky = getEnvironment("swe-smith-oracle", { ...dataset.environmentConfig, installCommand });
    const slot = await newSandbox()(0);
    const item = flaky.parseItem(rows[0]);
    await assert.rejects(
      flaky.setup(item, slot),
      (error: unknown) =>
        error instanceof InfrastructureError && error.source === "setup" && /install .*exit 3: no index/.test(error.message),
    );
    await writeFile(join(slot.cache, "index-up"), "");
    await flaky.setup(item, slot);
    await flaky.setup(item, slot);
    assert.equal((await readFile(join(slot.cache, "tries.log"), "utf8")).trim().split("\n").length, 2);
  });
});
