import assert from "node:assert/strict";
import { test } from "node:test";
import { extractToolCalls, isMalformed, parseArguments, parseHermesText } from "../../../src/rollout/toolcalls.ts";

const ids = () => {
  let n = 0;
  return () => `call_${++n}`;
};

test("hermes: one call, text around it kept as content", () => {
  const out = parseHermesText('Let me look.\n<tool_call>\n{"name": "terminal", "arguments": {"command": "ls"}}\n</tool_call>', ids());
  assert.equal(out.format, "hermes");
  assert.equal(out.content, "Let me look.");
  assert.deepEqual(out.calls, [{ id: "call_1", name: "terminal", arguments: { command: "ls" }, rawArguments: '{"command":"ls"}' }]);
});

test("hermes: several blocks, and an unclosed last block still counts", () => {
  const text = '<tool_call>{"name":"a","arguments":{}}</tool_call> mid <tool_call>{"name":"b","arguments":{"x":1}}';
  const out = parseHermesText(text, ids());
  assert.deepEqual(
    out.calls.map((c) => [c.id, c.name, isMalformed(c) ? c.error : c.arguments]),
    [
      ["call_1", "a", {}],
      ["call_2", "b", { x: 1 }],
    ],
  );
  assert.equal(out.content, "mid");
});

test("hermes: arguments given as a JSON string are decoded", () => {
  const out = parseHermesText('<tool_call>{"name":"terminal","arguments":"{\\"command\\": \\"pwd\\"}"}</tool_call>', ids());
  assert.deepEqual(out.calls[0], { id: "call_1", name: "terminal", arguments: { command: "pwd" }, rawArguments: '{"command":"pwd"}' });
  assert.equal(out.content, null);
});

test("hermes: malformed blocks are reported, valid neighbours still run", () => {
  const text = [
    "<tool_call>{not json}</tool_call>",
    '<tool_call>{"arguments": {}}</tool_call>',
    '<tool_call>["terminal"]</tool_call>',
    '<tool_call>{"name":"terminal","arguments":[1,2]}</tool_call>',
    '<tool_call>{"name":"terminal","arguments":{"command":"ls"}}</tool_call>',
  ].join("\n");
  const out = parseHermesText(text, ids());
  assert.deepEqual(
    out.calls.map((c) => [c.id, isMalformed(c)]),
    [
      ["call_1", true],
      ["call_2", true],
      ["call_3", true],
      ["call_4", true],
      ["call_5", false],
    ],
  );
  const malformed = out.calls.filter(isMalformed);
  assert.match(malformed[0]!.error, /not valid JSON/);
  assert.match(malformed[1]!.error, /no "name"/);
  assert.match(malformed[2]!.error, /JSON object/);
  assert.equal(malformed[3]!.name, "terminal");
  assert.match(malformed[3]!.error, /JSON object/);
});

test("no tags: plain content, no calls", () => {
  assert.deepEqual(parseHermesText("All done.", ids()), { content: "All done.", calls: [], format: "none" });
});

test("parseArguments accepts objects and JSON object strings, rejects the rest", () => {
  assert.deepEqual(parseArguments('{"a":1}'), { ok: true, value: { a: 1 } });
  assert.deepEqual(parseArguments(""), { ok: true, value: {} });
  assert.equal(parseArguments("ls -la").ok, false);
  assert.equal(parseArguments("[1]").ok, false);
  assert.equal(parseArguments(3).ok, false);
});

const native = {
  role: "assistant" as const,
  content: '<tool_call>{"name":"x","arguments":{}}</tool_call>',
  tool_calls: [
    { id: "n1", type: "function" as const, function: { name: "terminal", arguments: '{"command":"ls"}' } },
    { id: "n2", type: "function" as const, function: { name: "terminal", arguments: "{broken" } },
  ],
};

test("format auto prefers native tool_calls; malformed native arguments are reported", () => {
  const out = extractToolCalls(native, "auto", ids());
  assert.equal(out.format, "native");
  assert.deepEqual(
    out.calls.map((c) => [c.id, c.name, isMalformed(c)]),
    [
      ["n1", "terminal", false],
      ["n2", "terminal", true],
    ],
  );
});

test("format hermes ignores native calls and reads the text; native ignores the text", () => {
  assert.deepEqual(
    extractToolCalls(native, "hermes", ids()).calls.map((c) => c.name),
    ["x"],
  );
  const onlyText = { role: "assistant" as const, content: native.content };
  assert.equal(extractToolCalls(onlyText, "native", ids()).calls.length, 0);
  assert.equal(extractToolCalls(onlyText, "auto", ids()).calls.length, 1);
});

test("hermes: a call written inside the answer's leading <think> block is reasoning, not a call", () => {
  const text = [
    '<think>I could run <tool_call>{"name":"terminal","arguments":{"command":"rm -rf src"}}</tool_call> but listing is safer.</think>',
    '<tool_call>{"name":"terminal","arguments":{"command":"ls"}}</tool_call>',
  ].join("\n");
  const out = parseHermesText(text, ids());
  assert.deepEqual(out.calls, [{ id: "call_1", name: "terminal", arguments: { command: "ls" }, rawArguments: '{"command":"ls"}' }]);
  assert.match(out.content ?? "", /^<think>I could run <tool_call>.*rm -rf src.*<\/think>$/s);
  // Cut off while thinking: nothing it wrote is a call.
  assert.deepEqual(parseHermesText('<think>maybe <tool_call>{"name":"terminal","arguments":{"command":"ls"}}', ids()).calls, []);
  // A <think> tag that is not the start of the answer is just text (here inside a command).
  const grep = parseHermesText(
    '<tool_call>{"name":"terminal","arguments":{"command":"grep -r \'<think>\' ."}}</tool_call>\n' +
      '<tool_call>{"name":"terminal","arguments":{"command":"ls"}}</tool_call>',
    ids(),
  );
  assert.deepEqual(
    grep.calls.map((c) => !isMalformed(c) && c.arguments.command),
    ["grep -r '<think>' .", "ls"],
  );
});
