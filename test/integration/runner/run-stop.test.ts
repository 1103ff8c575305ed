import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { runJob } from "../../../src/local/job.ts";
import { startFakeNomad } from "../../../src/testbeds/fake-nomad/server.ts";

/** How `hermes-rollouts run` ends when it does not finish: interrupted, or refused after the dataset opened. */
const run = promisify(execFile);
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hermes-run-stop-test-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const job = (environment: string) => `apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: {name: stop}
spec:
  poolRef: {name: local}
  environment: {name: ${environment}}
  dataset: {bundled: swe-smith-mini}
  model: {builtin: {policy: oracle}}
  groupSize: 1
  limits: {maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120}
`;

test("interrupted on a terminal: the run rejects and puts the terminal back (bar stopped, cursor shown)", async () => {
  const jobPath = join(dir, "interrupted.yaml");
  await writeFile(jobPath, job("swe-smith-oracle"));
  const interrupt = new AbortController();
  let output = "";
  const terminal = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output += chunk.toString();
      // Interrupt once the bar shows finished items, so groups are in flight when it comes.
      if (/(?<!\d)[1-9]\d*\/\S+ items/.test(output)) interrupt.abort(new Error("interrupted"));
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(terminal, { isTTY: true, columns: 200 });
  await assert.rejects(
    runJob({
      jobPath,
      outDir: join(dir, "out-interrupted"),
      concurrency: 4,
      stream: terminal,
      signal: interrupt.signal,
      environment: { datasets: { bundledDir: join(dir, "mini") } },
    }),
    /interrupted/,
  );
  const showCursor = "\x1b[?25h";
  assert.ok(output.lastIndexOf(showCursor) > output.lastIndexOf("items |"), "the bar was left running with the cursor hidden");
});

test("a job whose environment does not take its dataset's settings: exit 1 naming the file, nothing left running", async () => {
  // The bundled dataset brings swe-smith-oracle settings (repoBaseURL, installCommand) that shell-task refuses,
  // which is only found once the dataset, and its loopback git server, is open.
  const jobPath = join(dir, "mismatch.yaml");
  await writeFile(jobPath, job("shell-task"));
  const result = await run(process.execPath, ["bin/hermes-rollouts.js", "run", jobPath, "--out", join(dir, "out-mismatch")], {
    env: { ...process.env, HERMES_MINI_DATASET_DIR: join(dir, "mini") },
    timeout: 60_000,
    killSignal: "SIGKILL",
  }).then(
    () => assert.fail("expected a non-zero exit"),
    (error: { code: number | null; killed: boolean; stderr: string }) => error,
  );
  assert.equal(result.killed, false, "the run did not exit after its error (something it opened was left running)");
  assert.equal(result.code, 1);
  assert.ok(result.stderr.includes(`${jobPath}: spec.environment`), result.stderr);
  assert.match(result.stderr, /shell-task/);
});

test("SIGTERM while the Nomad sandbox is still pending: the run exits within seconds and deregisters it", async () => {
  // Nomad never places the allocation while the run is up (the evaluation waits 60 s): create is still waiting.
  const fake = await startFakeNomad({ placementDelayMs: 60_000 });
  try {
    const jobPath = join(dir, "nomad-pending.yaml");
    const poolPath = join(dir, "nomad-pending-pool.yaml");
    await writeFile(jobPath, job("swe-smith-oracle"));
    await writeFile(
      poolPath,
      `apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: {name: stop-nomad}
spec: {backend: nomad, minSandboxes: 1, maxSandboxes: 1, slotsPerSandbox: 1, nomad: {address: "${fake.url}", driver: raw_exec}}
`,
    );
    const child = spawn(
      process.execPath,
      ["bin/hermes-rollouts.js", "run", jobPath, "--pool", poolPath, "--out", join(dir, "out-nomad-pending")],
      { env: { ...process.env, HERMES_MINI_DATASET_DIR: join(dir, "mini") }, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, "exit");
    for (const deadline = Date.now() + 90_000; fake.state.jobs.size === 0;) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `the run registered no Nomad job: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // create is now waiting for the allocation
    const signalled = Date.now();
    child.kill("SIGTERM");
    const timeout = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [code, signal] = (await exited) as [number | null, string | null];
    clearTimeout(timeout);
    const tookMs = Date.now() - signalled;
    assert.equal(signal, null, "killed: the run did not exit on SIGTERM within 20 s");
    assert.ok(tookMs < 5_000, `exited ${tookMs} ms after SIGTERM`);
    assert.notEqual(code, 0);
    assert.deepEqual([...fake.state.jobs.keys()], [], "the pending sandbox's job was left registered");
  } finally {
    await fake.close();
  }
});
