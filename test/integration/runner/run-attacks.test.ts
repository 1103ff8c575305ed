/**
 * Issue 11's attacks through `hermes-rollouts run` as a black box: the model endpoint answers with the attacker's
 * terminal commands (the built-in model server's oracle policy, the task's "solution" replaced by the attack), and
 * the real CLI runs the job on its embedded local pool. What the slot saw comes back in scored.jsonl's tool results.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getEnvironment } from "../../../src/envs/index.ts";
import { resolveDataset } from "../../../src/envs/resolve.ts";
import { startModelServer, type ModelServer } from "../../../src/model-server/server.ts";
import type { OracleTask } from "../../../src/model-server/policy.ts";
import type { ScoredDataGroup } from "../../../src/rollout/scored.ts";
import { SLOT_MAX_PROCESSES } from "../../../src/backends/isolation.ts";
import { burstCommand } from "../backends/fork-burst.ts";

const CLI = new URL("../../../bin/hermes-rollouts.js", import.meta.url).pathname;
const runAsRoot = process.getuid?.() === 0;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hermes-run-attacks-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The mini dataset's first item as the model server's task, with `commands` as the model's terminal calls. */
async function attackerTask(commands: string[]): Promise<OracleTask> {
  const dataset = await resolveDataset({ bundled: "swe-smith-mini", maxItems: 1 }, join(dir, "x.yaml"), { bundledDir: join(dir, "mini") });
  const env = getEnvironment("swe-smith-oracle", dataset.environmentConfig);
  try {
    for await (const row of dataset.rows) {
      const item = env.parseItem(row);
      return { id: env.itemId(item), prompt: env.prompt(item).user, commands };
    }
    throw new Error("the mini dataset is empty");
  } finally {
    await dataset.close();
  }
}

function jobYaml(model: ModelServer, poolIsolation?: string): string {
  const job = `apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: {name: attacks}
spec:
  poolRef: {name: local}
  environment: {name: swe-smith-oracle}
  dataset: {bundled: swe-smith-mini, maxItems: 1}
  model: {baseURL: "${model.baseURL}"}
  groupSize: 1
  limits: {maxTurns: 6, toolTimeoutSeconds: 20, trajectoryTimeoutSeconds: 120}
`;
  if (poolIsolation === undefined) return job;
  return `${job}---
apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: {name: local}
spec: {backend: local, minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 2, isolation: ${poolIsolation}}
`;
}

/** Runs the CLI (prefixed by `wrapper`, e.g. a capability drop) and gives its exit code, output and results. */
async function runCli(yaml: string, wrapper: string[] = []) {
  const jobPath = join(dir, `job-${Math.random().toString(36).slice(2)}.yaml`);
  const outDir = `${jobPath}.out`;
  await writeFile(jobPath, yaml);
  const [file, ...args] = [...wrapper, process.execPath, CLI, "run", jobPath, "--out", outDir];
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      file!,
      args,
      { env: { PATH: process.env.PATH ?? "", HOME: dir, LOG_LEVEL: "info", HERMES_MINI_DATASET_DIR: join(dir, "mini") }, timeout: 240_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    ),
  );
  const scored = await readFile(join(outDir, "scored.jsonl"), "utf8").catch(() => "");
  const groups =
    scored.trim() === ""
      ? []
      : scored
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line) as ScoredDataGroup);
  const summary = JSON.parse(await readFile(join(outDir, "summary.json"), "utf8").catch(() => "{}")) as Record<string, unknown>;
  return { code, output: stdout + stderr, groups, summary };
}

/** Every tool result the model got, in order. */
const toolResults = (groups: ScoredDataGroup[]): string[] =>
  groups.flatMap((group) =>
    group.messages
      .flat()
      .filter((m) => m.role === "tool")
      .map((m) => String(m.content ?? "")),
  );

test("a model reaches no host loopback service (not the model endpoint either); held pipes or daemons cannot dodge the score", async () => {
  const tasks: OracleTask[] = []; // filled once the model's own port is known: the server reads it per request
  const model = await startModelServer({ policy: "oracle", tasks });
  try {
    const port = new URL(model.baseURL).port;
    const connect = `python3 -c 'import socket
try:
    socket.create_connection(("127.0.0.1", ${port}), timeout=3); print("REACHED-MODEL")
except OSError as error:
    print("BLOCKED", type(error).__name__)'`;
    const holdPipe = "setsid sleep 100 & sleep 0.3; echo HELD-PIPE-RETURNED";
    const daemon = "setsid sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null & echo DAEMON-STARTED";
    tasks.push(await attackerTask([connect, holdPipe, daemon]));
    const started = Date.now();
    const { code, output, groups, summary } = await runCli(jobYaml(model));
    assert.equal(code, 0, output);
    const results = toolResults(groups).join("\n");
    assert.match(results, /BLOCKED ConnectionRefusedError/);
    assert.doesNotMatch(results, /REACHED-MODEL/);
    assert.match(results, /HELD-PIPE-RETURNED/);
    assert.match(results, /DAEMON-STARTED/);
    // Scored as the model's own 0, once: no retry as an infrastructure failure, no time spent on the held pipe.
    assert.deepEqual([summary.failed, summary.retries, groups.length, groups[0]?.scores], [0, 0, 1, [0]]);
    assert.ok(Date.now() - started < 100_000, "the run waited for the held pipe");
  } finally {
    await model.close();
  }
});

test("a model's fork burst stops at the slot's process cap and is scored as its own 0", async () => {
  const model = await startModelServer({
    policy: "oracle",
    tasks: [await attackerTask([`${burstCommand(2 * SLOT_MAX_PROCESSES, false)}; echo STARTED $(cat burst)`])],
  });
  try {
    const { code, output, groups, summary } = await runCli(jobYaml(model));
    assert.equal(code, 0, output);
    const started = Number(/STARTED (\d+)/.exec(toolResults(groups).join("\n"))?.[1]);
    assert.ok(started <= SLOT_MAX_PROCESSES && started >= SLOT_MAX_PROCESSES - 10, `the model started ${started} processes`);
    assert.deepEqual([summary.failed, summary.retries, groups.length, groups[0]?.scores], [0, 0, 1, [0]]);
  } finally {
    await model.close();
  }
});

test(
  "fail closed: where bwrap cannot run, `run` stops with the reason; a pool that asks for none runs, and says so",
  { skip: !runAsRoot && "needs root to drop its capabilities" },
  async () => {
    const model = await startModelServer({ policy: "noop" });
    const noCapabilities = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"];
    try {
      const refused = await runCli(jobYaml(model), noCapabilities);
      assert.notEqual(refused.code, 0);
      assert.match(refused.output, /bubblewrap unavailable, slots cannot be isolated/);
      assert.deepEqual(refused.groups, [], "nothing ran unconfined");
      const unconfined = await runCli(jobYaml(model, "{mode: none}"), noCapabilities);
      assert.equal(unconfined.code, 0, unconfined.output);
      assert.match(unconfined.output, /"msg":"slot isolation is off"/);
      assert.equal(unconfined.groups.length, 1);
    } finally {
      await model.close();
    }
  },
);
