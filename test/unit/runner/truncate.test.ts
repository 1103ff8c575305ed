import assert from "node:assert/strict";
import { test } from "node:test";
import { truncateTail } from "../../../src/runner/tools.ts";

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
