import assert from "node:assert/strict";
import { test } from "node:test";
import { terminalTool, truncateTail } from "../../../src/rollout/tools.ts";

test("short output is kept whole", () => {
  assert.deepEqual(truncateTail("hello", 10), { text: "hello", truncated: false });
});

test("long output keeps the tail with a notice in front", () => {
  const out = truncateTail("a".repeat(100) + "THE END", 10);
  assert.equal(out.truncated, true);
  assert.ok(out.text.endsWith("\naaaTHE END"));
  assert.match(out.text, /^\[output truncated: first 97 bytes dropped, last 10 kept\]/);
});

test("never starts inside a multi-byte character", () => {
  const out = truncateTail("x".repeat(20) + "éééé", 5); // é is 2 bytes: the cut lands mid-character
  assert.ok(out.text.endsWith("\néé"));
  assert.ok(!out.text.includes("\uFFFD"));
});

test("the terminal tool marks output its sandbox already cut to the limit", async () => {
  const slot = {
    sandbox: "s",
    slot: 0,
    // What a backend returns for a command that printed far more than maxOutputBytes: the last bytes, flagged.
    exec: async () => ({ exitCode: 0, stdout: "y".repeat(100), stderr: "", durationMs: 1, timedOut: false, truncated: true }),
    readFile: async () => new Uint8Array(),
    writeFile: async () => {},
    release: async () => {},
  };
  const outcome = await terminalTool.run({ command: "yes | head -c 100000" }, { slot, timeoutMs: 1000, maxOutputBytes: 100 });
  const output: string = JSON.parse(outcome.content).output;
  assert.match(output, /^\[output truncated: earlier output dropped, last 100 kept\]\ny{100}$/);
});
