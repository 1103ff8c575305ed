import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const cli = (...args: string[]) => run(process.execPath, ["bin/hermes-rollouts.js", ...args]);

test("`help <role>` prints the role's own arguments and options, as `<role> --help` does", async () => {
  const viaHelp = await cli("help", "run");
  const viaFlag = await cli("run", "--help");
  assert.match(viaHelp.stdout, /<rolloutjob\.yaml>/);
  assert.match(viaHelp.stdout, /--pool <sandboxpool\.yaml>/);
  assert.equal(viaHelp.stdout, viaFlag.stdout);
});

test("`runner --help` names the environment the runner reads, since it takes no options", async () => {
  const { stdout } = await cli("runner", "--help");
  for (const name of [
    "HERMES_API_URL",
    "HERMES_JOB_NAMESPACE",
    "HERMES_JOB_NAME",
    "HERMES_JOB_TOKEN",
    "HERMES_RUNNER_ID",
    "OPENAI_API_KEY",
  ]) {
    assert.ok(stdout.includes(name), `runner --help does not mention ${name}`);
  }
});

test("`sandbox-server --isolation` refuses a mode it does not know instead of serving with auto", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hermes-cli-test-"));
  // The guard kills a server that started anyway; the assertions say why it failed.
  const result = await run(
    process.execPath,
    ["bin/hermes-rollouts.js", "sandbox-server", "--isolation", "bwarp", "--port", "0", "--data-dir", dataDir],
    {
      timeout: 15_000,
      killSignal: "SIGKILL",
    },
  )
    .then(
      () => assert.fail("expected a non-zero exit"),
      (error: { code: number | null; killed: boolean; stderr: string }) => error,
    )
    .finally(() => rm(dataDir, { recursive: true, force: true }));
  assert.equal(result.killed, false, "the server started with an unknown isolation mode");
  assert.equal(result.code, 1);
  assert.match(result.stderr, /--isolation.*bwarp/);
});

test("`sandbox-server --token-file` refuses an empty or missing file by the option's name, before serving", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hermes-cli-test-"));
  try {
    await writeFile(join(dir, "empty"), "\n");
    for (const [file, message] of [
      ["empty", /--token-file \S+empty is empty/],
      ["missing", /--token-file \S+missing: ENOENT/],
    ] as const) {
      const args = ["bin/hermes-rollouts.js", "sandbox-server", "--token-file", join(dir, file), "--port", "0", "--data-dir", dir];
      const failed = await run(process.execPath, args, { timeout: 15_000, killSignal: "SIGKILL" }).then(
        () => assert.fail(`started with --token-file ${file}`),
        (error: { code: number | null; killed: boolean; stderr: string }) => error,
      );
      assert.equal(failed.killed, false, "the server started anyway");
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, message);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("every role refuses a port that is not a port number by name, before starting anything", async () => {
  for (const [role, value] of [
    ["controller", "abc"],
    ["mock-modal", "abc"],
    ["model-server", "70000"],
    ["fake-nomad", "-1"],
    ["sandbox-server", "8o80"],
  ] as const) {
    const failed = await run(process.execPath, ["bin/hermes-rollouts.js", role, "--port", value], {
      timeout: 15_000,
      killSignal: "SIGKILL",
    }).then(
      () => assert.fail(`${role} --port ${value} started`),
      (error: { code: number | null; killed: boolean; stderr: string }) => error,
    );
    assert.equal(failed.killed, false, `${role} --port ${value} did not exit on its own`);
    assert.match(failed.stderr, /option '--port <port>' argument .* is invalid/, `${role}: ${failed.stderr}`);
  }
});
