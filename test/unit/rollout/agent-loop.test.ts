import assert from "node:assert/strict";
import { test } from "node:test";
import { runAgentLoop } from "../../../src/rollout/agent-loop.ts";
import type { ModelClient } from "../../../src/rollout/model-client.ts";
import { defaultTools } from "../../../src/rollout/tools.ts";
import type { ChatMessage, LeasedSlot, ModelTurn } from "../../../src/rollout/types.ts";
import { ModelRequestError, InfrastructureError, SandboxError } from "../../../src/base/errors.ts";

function scripted(answers: (ChatMessage | Error)[]): ModelClient & { seen: ChatMessage[][] } {
  const seen: ChatMessage[][] = [];
  return {
    seen,
    async complete(request) {
      seen.push(structuredClone([...request.messages]));
      const next = answers.shift() ?? { role: "assistant", content: "done" };
      if (next instanceof Error) throw next;
      return { message: next, finishReason: "stop", latencyMs: 1, promptTokens: 10, completionTokens: 5 } satisfies ModelTurn;
    },
  };
}

function slot(
  exec: LeasedSlot["exec"] = async () => ({ exitCode: 0, stdout: "ok", stderr: "", durationMs: 1, timedOut: false, truncated: false }),
): LeasedSlot {
  return { sandbox: "s", slot: 0, exec, readFile: async () => new Uint8Array(), writeFile: async () => {}, release: async () => {} };
}

const limits = { maxTurns: 5, toolTimeoutSeconds: 5, trajectoryTimeoutSeconds: 30, maxTokenLength: 10_000, maxToolOutputBytes: 2048 };
const user: ChatMessage[] = [{ role: "user", content: "go" }];
const call = (body: string): ChatMessage => ({ role: "assistant", content: `<tool_call>${body}</tool_call>` });

test("a malformed call is answered with an error and the loop goes on", async () => {
  const model = scripted([call("{oops"), call('{"name":"terminal","arguments":{"command":"ls"}}')]);
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits,
    format: "hermes",
    maxTokensPerTurn: 100,
  });
  assert.equal(result.stopReason, "natural");
  assert.equal(result.turns.length, 3);
  const replies = result.messages.filter((m) => m.role === "tool").map((m) => m.content ?? "");
  // Unwrapped: the server's chat template wraps tool messages in <tool_response> itself.
  assert.match(replies[0]!, /^\{"error":"Malformed tool call: tool call is not valid JSON/);
  assert.match(replies[1]!, /"exit_code":0/);
  assert.deepEqual(
    result.toolCalls.map((c) => c.ok),
    [false, true],
  );
});

test("unknown tools and bad terminal arguments are errors the model reads", async () => {
  const model = scripted([
    { role: "assistant", content: null, tool_calls: [{ id: "a", type: "function", function: { name: "browser", arguments: "{}" } }] },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "b", type: "function", function: { name: "terminal", arguments: '{"command": 3}' } }],
    },
  ]);
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits,
    format: "native",
    maxTokensPerTurn: 100,
  });
  const replies = result.messages.filter((m) => m.role === "tool");
  assert.deepEqual(
    replies.map((m) => m.tool_call_id),
    ["a", "b"],
  );
  assert.deepEqual(JSON.parse(replies[0]!.content ?? ""), { error: `Unknown tool 'browser'. Available tools: ["terminal","submit"]` });
  assert.match(JSON.parse(replies[1]!.content ?? "").error, /non-empty "command"/);
});

test("the submit tool ends the trajectory", async () => {
  const model = scripted([
    call('{"name":"submit","arguments":{"summary":"fixed"}}'),
    call('{"name":"terminal","arguments":{"command":"ls"}}'),
  ]);
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits,
    format: "auto",
    maxTokensPerTurn: 100,
  });
  assert.equal(result.stopReason, "finish_tool");
  assert.equal(result.turns.length, 1);
});

test("max turns stops a model that never stops calling tools", async () => {
  const model = scripted(Array.from({ length: 10 }, () => call('{"name":"terminal","arguments":{"command":"ls"}}')));
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits: { ...limits, maxTurns: 3 },
    format: "auto",
    maxTokensPerTurn: 100,
  });
  assert.equal(result.stopReason, "max_turns");
  assert.equal(result.turns.length, 3);
});

test("the token budget stops the loop and caps max_tokens", async () => {
  const seenMax: number[] = [];
  const model: ModelClient = {
    async complete(request) {
      seenMax.push(request.maxTokens);
      const message: ChatMessage = {
        role: "assistant",
        content: null,
        tool_calls: [{ id: `c${seenMax.length}`, type: "function", function: { name: "terminal", arguments: '{"command":"ls"}' } }],
      };
      return { message, finishReason: "tool_calls", latencyMs: 1, promptTokens: 200 * seenMax.length, completionTokens: 50 };
    },
  };
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits: { ...limits, maxTokenLength: 500 },
    format: "native",
    maxTokensPerTurn: 400,
  });
  assert.equal(result.stopReason, "token_budget");
  // Each turn also holds the last tool result: {"output":"ok","exit_code":0,"error":null}, 11 tokens by estimate.
  assert.deepEqual(seenMax, [400, 250 - 11, 50 - 11]);
});

test("an endpoint error that is not infrastructure ends the loop, scored as it stands", async () => {
  const model = scripted([new ModelRequestError("context too long")]);
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits,
    format: "auto",
    maxTokensPerTurn: 100,
  });
  assert.equal(result.stopReason, "model_error");
  assert.equal(result.error, "context too long");
});

test("infrastructure failures propagate: endpoint down, sandbox gone", async () => {
  await assert.rejects(
    runAgentLoop({
      model: scripted([new InfrastructureError("model", "down")]),
      tools: defaultTools(),
      slot: slot(),
      messages: user,
      limits,
      format: "auto",
      maxTokensPerTurn: 100,
    }),
    InfrastructureError,
  );
  const dead = slot(async () => {
    throw new SandboxError("gone", "sandbox terminated");
  });
  await assert.rejects(
    runAgentLoop({
      model: scripted([call('{"name":"terminal","arguments":{"command":"ls"}}')]),
      tools: defaultTools(),
      slot: dead,
      messages: user,
      limits,
      format: "auto",
      maxTokensPerTurn: 100,
    }),
    (error: unknown) => error instanceof InfrastructureError && error.source === "sandbox",
  );
  // Any terminal call that could not run (here the runners' API refusing it) ends the trajectory, unscored.
  const refused = slot(async () => {
    throw new Error("HTTP 500 from the runners' API");
  });
  await assert.rejects(
    runAgentLoop({
      model: scripted([call('{"name":"terminal","arguments":{"command":"ls"}}')]),
      tools: defaultTools(),
      slot: refused,
      messages: user,
      limits,
      format: "auto",
      maxTokensPerTurn: 100,
    }),
    (error: unknown) => error instanceof InfrastructureError && error.source === "sandbox",
  );
});

test("a timed-out command reports exit code 124 and its output tail", async () => {
  const timedOut = slot(async () => ({
    exitCode: 137,
    stdout: "x".repeat(5000),
    stderr: "",
    durationMs: 1,
    timedOut: true,
    truncated: false,
  }));
  const model = scripted([call('{"name":"terminal","arguments":{"command":"sleep 99","timeout":2}}')]);
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: timedOut,
    messages: user,
    limits,
    format: "auto",
    maxTokensPerTurn: 100,
  });
  const reply = JSON.parse(result.messages.find((m) => m.role === "tool")?.content ?? "");
  assert.equal(reply.exit_code, 124);
  assert.match(reply.error, /timed out after 2s/);
  assert.ok(Buffer.byteLength(reply.output) < 2200);
  assert.match(reply.output, /^\[output truncated/);
});

test("native calls: each reply answers its own call id, in the order the model wrote the calls", async () => {
  const model = scripted([
    {
      role: "assistant",
      content: null,
      tool_calls: [
        { id: "bad", type: "function", function: { name: "terminal", arguments: "{oops" } },
        { id: "good", type: "function", function: { name: "terminal", arguments: '{"command":"ls"}' } },
      ],
    },
  ]);
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: slot(),
    messages: user,
    limits,
    format: "native",
    maxTokensPerTurn: 100,
  });
  const assistant = result.messages.find((m) => m.role === "assistant" && m.tool_calls);
  assert.deepEqual(
    assistant?.tool_calls?.map((c) => [c.id, c.function.arguments]),
    [
      ["bad", "{oops"],
      ["good", '{"command":"ls"}'],
    ],
  );
  const replies = result.messages.filter((m) => m.role === "tool");
  assert.deepEqual(
    replies.map((m) => m.tool_call_id),
    ["bad", "good"],
  );
  assert.match(JSON.parse(replies[0]!.content ?? "").error, /Malformed tool call/);
  assert.equal(JSON.parse(replies[1]!.content ?? "").exit_code, 0);
});

test("the token budget counts the tool results added since the endpoint last reported usage", async () => {
  const seenMax: number[] = [];
  const model: ModelClient = {
    async complete(request) {
      seenMax.push(request.maxTokens);
      const message: ChatMessage = {
        role: "assistant",
        content: null,
        tool_calls: [{ id: `c${seenMax.length}`, type: "function", function: { name: "terminal", arguments: '{"command":"cat big"}' } }],
      };
      return { message, finishReason: "tool_calls", latencyMs: 1, promptTokens: 100, completionTokens: 50 };
    },
  };
  // About 2000 / 4 = 500 tokens of tool output: the next prompt holds at least 650 of the 700 tokens.
  const big = slot(async () => ({ exitCode: 0, stdout: "x".repeat(2000), stderr: "", durationMs: 1, timedOut: false, truncated: false }));
  const result = await runAgentLoop({
    model,
    tools: defaultTools(),
    slot: big,
    messages: user,
    limits: { ...limits, maxTokenLength: 700 },
    format: "native",
    maxTokensPerTurn: 400,
  });
  assert.equal(result.turns.length, limits.maxTurns);
  assert.equal(seenMax[0], 400);
  assert.ok(seenMax[1]! <= 50, `second turn may generate ${seenMax[1]} tokens`);
});
