/**
 * Token-in generation (spec.model.tokenizer with server vllm or sglang), as Atropos' ManagedServer and prime-rl do
 * it: the runner renders the chat template itself, keeps the ids the model sampled exactly, encodes only what
 * was added since (tool results, the next generation prompt) and sends the whole sequence as ids. The model is
 * conditioned on its own tokens, so a trajectory is one sequence and every assistant turn trains; nothing the
 * server re-renders (reasoning parsers, tool parsers, a canonical BPE split) can make it drift.
 *
 * Endpoints, from the projects' sources:
 * - vLLM `POST /v1/completions` (vllm/entrypoints/openai/protocol.py, CompletionRequest: `prompt` may be a list
 *   of token ids; `return_token_ids` fills CompletionResponseChoice `token_ids` and `prompt_token_ids`;
 *   `logprobs: 0` gives the sampled tokens' logprobs in CompletionLogProbs `token_logprobs`).
 * - SGLang `POST /generate` at the server root (python/sglang/srt/managers/io_struct.py, GenerateReqInput:
 *   `input_ids`, `sampling_params`, `return_logprob`): the answer holds `text`, `output_ids` and `meta_info`
 *   with `finish_reason.type`, `prompt_tokens`, `completion_tokens` and `output_token_logprobs`, one
 *   `[logprob, token_id, text]` per output token.
 */
import OpenAI from "openai";
import type { ChatTokenizer } from "./chat-tokenizer.ts";
import { classifyModelError, type CompletionRequest, type ModelClient } from "./model-client.ts";
import type { ToolSchema } from "./tools.ts";
import type { ChatMessage, ModelSettings, ModelTurn } from "./types.ts";
import { InfrastructureError, ModelRequestError } from "../base/errors.ts";

/** What one trajectory's sequence holds after a turn: its text (special tokens included) and the messages it covers. */
export interface SequenceSoFar {
  ids: readonly number[];
  text: string;
  messages: number;
}

export interface TokenPrompt {
  ids: number[];
  text: string;
}

function indexAfterNth(text: string, needle: string, n: number): number {
  let at = 0;
  for (let i = 0; i < n; i++) {
    const found = text.indexOf(needle, at);
    if (found < 0) return -1;
    at = found + needle.length;
  }
  return at;
}

/** How much of the last answer's end must close the history part of a re-rendered prompt. */
const ANSWER_TAIL = 64;

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/**
 * The text the new messages add after the sequence so far. When the fresh render extends the text so far, its
 * rest. Otherwise the template re-rendered the history differently from what the model wrote (Qwen3 drops or
 * reformats reasoning, `enable_thinking: false` adds an empty think block only to the generation prompt): the new
 * messages start after the end-of-turn token that closes the last message the sequence holds, provided the model's
 * last answer ends right there. Undefined when neither holds; the sequence then restarts.
 */
function continuation(
  tokenizer: ChatTokenizer,
  full: string,
  messages: readonly ChatMessage[],
  tools: readonly ToolSchema[],
  sofar: SequenceSoFar,
) {
  if (full.startsWith(sofar.text)) return full.slice(sofar.text.length);
  const eos = tokenizer.eosToken;
  const covered = tokenizer.render(messages.slice(0, sofar.messages), { tools, addGenerationPrompt: false });
  const at = indexAfterNth(full, eos, count(covered, eos));
  if (at < 0) return undefined;
  // The history part must end with the model's last answer, closed: a template that moves or drops messages
  // (a window over the history) would otherwise have the splice lose new ones.
  const answer = messages[sofar.messages - 1]?.content ?? "";
  if (!full.slice(0, at).endsWith(answer.slice(-ANSWER_TAIL) + eos)) return undefined;
  // A completion cut at max_tokens did not sample the end-of-turn token: the template's closing is a prompt token.
  return (sofar.text.endsWith(eos) ? "" : eos) + full.slice(at);
}

/** The prompt of the next turn: the sequence so far and only the new suffix encoded, or all of it on the first turn. */
export function nextPrompt(
  tokenizer: ChatTokenizer,
  messages: readonly ChatMessage[],
  tools: readonly ToolSchema[],
  sofar?: SequenceSoFar,
): TokenPrompt {
  const full = tokenizer.render(messages, { tools, addGenerationPrompt: true });
  const suffix = sofar ? continuation(tokenizer, full, messages, tools, sofar) : undefined;
  if (sofar === undefined || suffix === undefined) return { ids: tokenizer.encode(full), text: full };
  return { ids: [...sofar.ids, ...tokenizer.encode(suffix)], text: sofar.text + suffix };
}

type Loose = Record<string, unknown>;

interface Sampled {
  ids: number[];
  logprobs?: number[];
  finishReason: string | null;
}

function numbers(value: unknown): number[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === "number") ? (value as number[]) : undefined;
}

function readVllm(response: Loose): Sampled {
  const choice = (response.choices as Loose[] | undefined)?.[0];
  if (!choice) throw new ModelRequestError("the endpoint returned no choice");
  const ids = numbers(choice.token_ids);
  if (!ids)
    throw new InfrastructureError("model", "vLLM /v1/completions returned no token_ids: return_token_ids needs vLLM 0.10.2 or later");
  const logprobs = numbers((choice.logprobs as Loose | null | undefined)?.token_logprobs);
  return { ids, ...(logprobs ? { logprobs } : {}), finishReason: typeof choice.finish_reason === "string" ? choice.finish_reason : null };
}

function readSglang(response: Loose): Sampled {
  const meta = (response.meta_info ?? {}) as Loose;
  const entries = Array.isArray(meta.output_token_logprobs) ? (meta.output_token_logprobs as unknown[][]) : undefined;
  const ids =
    numbers(response.output_ids) ?? (entries?.every((e) => typeof e[1] === "number") ? entries.map((e) => e[1] as number) : undefined);
  if (!ids) throw new InfrastructureError("model", "SGLang /generate returned neither output_ids nor output_token_logprobs");
  const logprobs = entries?.every((e) => typeof e[0] === "number") ? entries.map((e) => e[0] as number) : undefined;
  const finish = (meta.finish_reason as Loose | null | undefined)?.type;
  if (finish === "abort") throw new ModelRequestError(`SGLang aborted the request: ${JSON.stringify(meta.finish_reason)}`);
  return { ids, ...(logprobs ? { logprobs } : {}), finishReason: typeof finish === "string" ? finish : null };
}

/** SGLang's native endpoints live at the server root; baseURL is the OpenAI-style `.../v1`. */
export function serverRoot(baseURL: string): string {
  return baseURL.replace(/\/+$/, "").replace(/\/v1$/, "");
}

export function createTokenInClient(settings: ModelSettings & { server: "vllm" | "sglang" }, tokenizer: ChatTokenizer): ModelClient {
  const base = settings.server === "sglang" ? serverRoot(settings.baseURL) : settings.baseURL;
  const client = new OpenAI({ baseURL: base, apiKey: settings.apiKey ?? "none", maxRetries: 2, timeout: 600_000 });
  const sequences = new WeakMap<ModelTurn, SequenceSoFar>();

  const generate = async (ids: number[], maxTokens: number, signal: AbortSignal | undefined): Promise<Sampled> => {
    if (settings.server === "vllm") {
      const body: Loose = {
        model: settings.model,
        prompt: ids,
        max_tokens: maxTokens,
        temperature: settings.temperature,
        top_p: settings.topP,
        n: 1,
        return_token_ids: true,
        ...(settings.logprobs ? { logprobs: 0 } : {}),
        ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
      };
      return readVllm((await client.post("/completions", { body, signal })) as Loose);
    }
    const sampling: Loose = { max_new_tokens: maxTokens, temperature: settings.temperature, top_p: settings.topP };
    if (settings.seed !== undefined) sampling.sampling_seed = settings.seed;
    const body = { input_ids: ids, sampling_params: sampling, return_logprob: settings.logprobs };
    return readSglang((await client.post("/generate", { body, signal })) as Loose);
  };

  return {
    toolsInTemplate: true,
    async complete(request: CompletionRequest): Promise<ModelTurn> {
      const previous = request.previous && sequences.get(request.previous);
      const prompt = nextPrompt(tokenizer, request.messages, request.tools ?? [], previous);
      const started = performance.now();
      let sampled: Sampled;
      try {
        sampled = await generate(prompt.ids, request.maxTokens, request.signal);
      } catch (error) {
        if (error instanceof InfrastructureError || error instanceof ModelRequestError) throw error;
        throw classifyModelError(error);
      }
      const latencyMs = performance.now() - started;
      const written = tokenizer.decode(sampled.ids);
      const eos = tokenizer.eosToken;
      const content = written.endsWith(eos) ? written.slice(0, -eos.length) : written;
      const aligned = sampled.logprobs && sampled.logprobs.length === sampled.ids.length;
      const turn: ModelTurn = {
        // Reasoning and tool-call blocks stay in the content as written; the loop parses the calls.
        message: { role: "assistant", content },
        finishReason: sampled.finishReason,
        promptTokenIds: prompt.ids,
        completionTokenIds: sampled.ids,
        ...(aligned ? { completionLogprobs: sampled.logprobs } : {}),
        promptTokens: prompt.ids.length,
        completionTokens: sampled.ids.length,
        latencyMs,
      };
      sequences.set(turn, { ids: [...prompt.ids, ...sampled.ids], text: prompt.text + written, messages: request.messages.length + 1 });
      return turn;
    },
  };
}
