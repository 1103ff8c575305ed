import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { runAgentLoop } from "../../../src/rollout/agent-loop.ts";
import { bundledTokenizerDirectory, loadChatTokenizer } from "../../../src/rollout/chat-tokenizer.ts";
import { createModelClient } from "../../../src/rollout/model-client.ts";
import { createTokenInClient } from "../../../src/rollout/token-client.ts";
import { startModelServer, type ModelServer } from "../../../src/model-server/server.ts";
import { INSPECT_COMMAND } from "../../../src/model-server/policy.ts";
import { assembleTokens, MASKED } from "../../../src/rollout/scored.ts";
import { defaultTools } from "../../../src/rollout/tools.ts";
import type { ExecRequest, ExecResult } from "../../../src/backends/types.ts";
import type { LeasedSlot, ToolCallFormat } from "../../../src/rollout/types.ts";

/** A slot that records commands and answers them without running anything. */
function recordingSlot(): LeasedSlot & { commands: string[] } {
  const commands: string[] = [];
  return {
    sandbox: "sb-test",
    slot: 0,
    commands,
    async exec(request: Omit<ExecRequest, "slot">): Promise<ExecResult> {
      commands.push(String(request.command));
      return { exitCode: 0, stdout: `ran ${commands.length}`, stderr: "", durationMs: 1, timedOut: false, truncated: false };
    },
    async readFile() {
      return new Uint8Array();
    },
    async writeFile() {},
    async release() {},
  };
}

const limits = { maxTurns: 10, toolTimeoutSeconds: 5, trajectoryTimeoutSeconds: 30, maxTokenLength: 100_000, maxToolOutputBytes: 4096 };
const tasks = [
  { id: "task-1", commands: ["echo fix-1"] },
  { id: "task-10", commands: ["echo fix-10a", "echo fix-10b"] },
];
let server: ModelServer;

before(async () => {
  server = await startModelServer({ policy: "oracle", tasks });
});
after(async () => {
  await server.close();
});

async function runOracle(format: ToolCallFormat, model = "hermes") {
  const slot = recordingSlot();
  const client = createModelClient({
    baseURL: server.baseURL,
    server: "vllm",
    model,
    toolCallFormat: format,
    temperature: 1,
    topP: 1,
    maxTokens: 512,
    logprobs: true,
  });
  const result = await runAgentLoop({
    model: client,
    tools: defaultTools(),
    slot,
    messages: [
      { role: "system", content: "You fix bugs." },
      { role: "user", content: "Fix task-10 please." },
    ],
    limits,
    format,
    maxTokensPerTurn: 512,
  });
  return { slot, result };
}

test("/v1/models lists the model", async () => {
  const body = (await (await fetch(`${server.baseURL}/models`)).json()) as { data: { id: string }[] };
  assert.deepEqual(
    body.data.map((m) => m.id),
    ["hermes"],
  );
});

for (const format of ["native", "hermes", "auto"] as const) {
  test(`oracle over ${format} tool calls: inspects, runs the task's commands in order, answers`, async () => {
    const { slot, result } = await runOracle(format);
    assert.deepEqual(slot.commands, [INSPECT_COMMAND, "echo fix-10a", "echo fix-10b"]);
    assert.equal(result.stopReason, "natural");
    assert.equal(result.turns.length, 4);
    const assistant = result.messages.filter((m) => m.role === "assistant");
    const tool = result.messages.filter((m) => m.role === "tool");
    assert.equal(tool.length, 3);
    if (format === "hermes") {
      assert.ok(assistant.slice(0, 3).every((m) => m.content?.includes("<tool_call>") && !m.tool_calls));
      assert.deepEqual(JSON.parse(tool[0]!.content ?? ""), { output: "ran 1", exit_code: 0, error: null });
      assert.match(result.messages[0]!.content ?? "", /<tools>/);
    } else {
      assert.ok(assistant.slice(0, 3).every((m) => m.tool_calls?.length === 1));
      assert.deepEqual(JSON.parse(tool[0]!.content ?? ""), { output: "ran 1", exit_code: 0, error: null });
    }
    // Every turn returned token ids and logprobs, and each prompt extends the previous prompt + completion.
    const sequence = assembleTokens(result.turns);
    assert.ok(sequence);
    assert.equal(sequence.restarts, 0);
    const trained = sequence.masks.filter((m) => m !== MASKED).length;
    assert.equal(
      trained,
      result.turns.reduce((n, t) => n + (t.completionTokenIds?.length ?? 0), 0),
    );
    assert.equal(sequence.logprobs?.length, sequence.tokens.length);
  });
}

test("a model name ending in -hermes forces Hermes text even when tools are offered", async () => {
  const { slot, result } = await runOracle("auto", "oracle-hermes");
  assert.equal(slot.commands.length, 3);
  assert.ok(result.messages.some((m) => m.role === "assistant" && m.content?.includes("<tool_call>")));
});

test("noop answers at once without tool calls", async () => {
  const noop = await startModelServer({ policy: "noop" });
  try {
    const slot = recordingSlot();
    const client = createModelClient({
      baseURL: noop.baseURL,
      server: "vllm",
      model: "hermes",
      toolCallFormat: "auto",
      temperature: 1,
      topP: 1,
      maxTokens: 64,
      logprobs: false,
    });
    const result = await runAgentLoop({
      model: client,
      tools: defaultTools(),
      slot,
      messages: [{ role: "user", content: "task-1" }],
      limits,
      format: "auto",
      maxTokensPerTurn: 64,
    });
    assert.equal(result.stopReason, "natural");
    assert.equal(result.turns.length, 1);
    assert.deepEqual(slot.commands, []);
    // Token ids come whatever the logprobs setting; logprobs only when asked.
    assert.ok((result.turns[0]?.completionTokenIds?.length ?? 0) > 0);
    assert.equal(result.turns[0]?.completionLogprobs, undefined);
  } finally {
    await noop.close();
  }
});

for (const kind of ["vllm", "sglang"] as const) {
  test(`bundled Qwen3 tokenizer, oracle over ${kind}'s token endpoint: one real-vocabulary sequence, every turn trained`, async () => {
    const tokenizer = loadChatTokenizer(bundledTokenizerDirectory("qwen3"));
    const real = await startModelServer({ policy: "oracle", tasks, tokenizer });
    try {
      const slot = recordingSlot();
      const settings = { baseURL: real.baseURL, model: "hermes", toolCallFormat: "auto", temperature: 1, topP: 1, maxTokens: 512 } as const;
      const result = await runAgentLoop({
        model: createTokenInClient({ ...settings, logprobs: true, server: kind }, tokenizer),
        tools: defaultTools(),
        slot,
        messages: [
          { role: "system", content: "You fix bugs." },
          { role: "user", content: "Fix task-10 please." },
        ],
        limits,
        format: "auto",
        maxTokensPerTurn: 512,
      });
      assert.deepEqual(slot.commands, [INSPECT_COMMAND, "echo fix-10a", "echo fix-10b"]);
      assert.equal(result.stopReason, "natural");
      const sequence = assembleTokens(result.turns);
      assert.ok(sequence);
      assert.equal(sequence.restarts, 0);
      assert.equal(sequence.logprobs?.length, sequence.tokens.length);
      const text = tokenizer.decode(sequence.tokens);
      assert.ok(text.startsWith("<|im_start|>system\nYou fix bugs.\n\n# Tools"), "Qwen3's template, tools included");
      assert.equal(text.split("<tool_response>").length - 1, 3);
      assert.ok(text.endsWith("<|im_start|>assistant\nI inspected the repository and applied the fix for task-10 (2 commands).<|im_end|>"));
    } finally {
      await real.close();
    }
  });
}

test("the token endpoints refuse a prompt that is not token ids, naming the field", async () => {
  const real = await startModelServer({ policy: "oracle", tasks, tokenizer: loadChatTokenizer(bundledTokenizerDirectory("qwen3")) });
  try {
    const vllm = await fetch(`${real.baseURL}/completions`, { method: "POST", body: JSON.stringify({ prompt: "hello" }) });
    assert.equal(vllm.status, 400);
    assert.match(((await vllm.json()) as { message: string }).message, /^prompt must be a non-empty list of token ids/);
    const sglang = await fetch(`${real.url}/generate`, { method: "POST", body: JSON.stringify({ text: "hello" }) });
    assert.equal(sglang.status, 400);
    assert.match(((await sglang.json()) as { error: { message: string } }).error.message, /^input_ids must be/);
  } finally {
    await real.close();
  }
});
