import { test } from "node:test";
import assert from "node:assert/strict";
import { startProcess } from "../../../src/backends/process.ts";

test("a command that cannot start (a NUL byte from the model) is exit 127 with the reason, not a thrown call", async () => {
  const running = startProcess({ file: "bash", args: ["-c", "echo a\u0000b"], cwd: "/", env: {} }, { timeoutMs: 10_000 });
  const result = await running.result;
  assert.equal(result.exitCode, 127);
  assert.equal(result.timedOut, false);
  assert.match(result.stderr, /^cannot start bash: .*null bytes/);
  running.kill(); // nothing to kill: a no-op
});
