/**
 * The token-in endpoints of vLLM and SGLang, in their answer shapes, for the built-in model server (and the test
 * suite's scripted fakes). From the projects' protocol sources:
 * - vLLM `POST /v1/completions`, vllm/entrypoints/openai/protocol.py: CompletionRequest `prompt` as a list of
 *   token ids, `return_token_ids`, `logprobs` (an int: top alternatives besides the sampled token); the answer's
 *   CompletionResponseChoice has `text` (special tokens skipped), `token_ids` and `prompt_token_ids` (with
 *   `return_token_ids`), CompletionLogProbs (`tokens`, `token_logprobs`, `text_offset`, `top_logprobs`) and
 *   `finish_reason`. Errors are vLLM's ErrorResponse (`object: "error"`, `message`, `type`, `code`).
 * - SGLang `POST /generate` at the server root, python/sglang/srt/managers/io_struct.py GenerateReqInput
 *   (`input_ids`, `sampling_params.max_new_tokens`, `return_logprob`) and the tokenizer manager's answer:
 *   `text`, `output_ids`, `meta_info` with `finish_reason` (`{type: "stop", matched: <token id>}`),
 *   `prompt_tokens`, `completion_tokens` and, with `return_logprob`, `output_token_logprobs` as
 *   `[logprob, token_id, null]` per output token.
 * Both put the end-of-turn token the model stopped on in the output ids, not in `text`. Not modelled: sampling
 * parameters, `max_tokens` cuts, streaming, batches.
 */
import type { ChatTokenizer } from "../rollout/chat-tokenizer.ts";
import type { ChatMessage } from "../rollout/types.ts";
import { toyLogprob } from "./tokenizer.ts";

type Body = Record<string, unknown>;

export type TokenEndpoint = "vllm" | "sglang";

/** Where each kind serves token-in generation, relative to the server root. */
export const TOKEN_ROUTES: Record<TokenEndpoint, string> = { vllm: "/v1/completions", sglang: "/generate" };

/** The prompt ids of a request, or why there are none. */
export function promptIds(kind: TokenEndpoint, request: Body): number[] | string {
  const ids = kind === "vllm" ? request.prompt : request.input_ids;
  const field = kind === "vllm" ? "prompt" : "input_ids";
  if (Array.isArray(ids) && ids.length > 0 && ids.every((t) => Number.isInteger(t))) return ids as number[];
  return `${field} must be a non-empty list of token ids`;
}

export function tokenErrorBody(kind: TokenEndpoint, message: string): Body {
  return kind === "vllm" ? { object: "error", message, type: "BadRequestError", code: 400 } : { error: { message } };
}

/** One answer: `ids` are what the model sampled, ending with the end-of-turn token. */
export function tokenAnswer(kind: TokenEndpoint, request: Body, prompt: number[], ids: number[], tokenizer: ChatTokenizer): Body {
  const text = tokenizer.decode(ids.slice(0, -1));
  if (kind === "sglang") {
    const meta: Body = {
      id: "generate-1",
      finish_reason: { type: "stop", matched: ids.at(-1) },
      prompt_tokens: prompt.length,
      completion_tokens: ids.length,
      cached_tokens: 0,
    };
    if (request.return_logprob === true) meta.output_token_logprobs = ids.map((id) => [toyLogprob(id), id, null]);
    return { text, output_ids: ids, meta_info: meta };
  }
  const withIds = request.return_token_ids === true;
  const choice: Body = {
    index: 0,
    text,
    logprobs:
      typeof request.logprobs === "number"
        ? {
            text_offset: ids.map((_, i) => i),
            token_logprobs: ids.map(toyLogprob),
            tokens: ids.map((id) => tokenizer.decode([id])),
            top_logprobs: null,
          }
        : null,
    finish_reason: "stop",
    stop_reason: null,
    token_ids: withIds ? ids : null,
    prompt_logprobs: null,
    prompt_token_ids: withIds ? prompt : null,
  };
  const usage = { prompt_tokens: prompt.length, completion_tokens: ids.length, total_tokens: prompt.length + ids.length };
  return {
    id: "cmpl-1",
    object: "text_completion",
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices: [choice],
    usage,
  };
}

const CHATML_MESSAGE = /<\|im_start\|>(system|user|assistant|tool)\n([\s\S]*?)<\|im_end\|>/g;

/**
 * The closed messages of a ChatML prompt (the format of the bundled Qwen3 template), for the policies, which read
 * a conversation; the open assistant header at the end is the turn being generated.
 */
export function chatmlMessages(prompt: string): ChatMessage[] {
  return [...prompt.matchAll(CHATML_MESSAGE)].map((m) => ({ role: m[1] as ChatMessage["role"], content: m[2] ?? "" }));
}
