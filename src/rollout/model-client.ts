/**
 * One chat completion against any OpenAI-compatible endpoint (vLLM, SGLang, the built-in server), recording
 * what the endpoint returned for training: OpenAI `logprobs`, and the token ids the server kind returns when
 * asked (see tokenIdFlags). From vLLM and SGLang, token ids are asked for whatever the logprobs setting. Nothing is required;
 * absent fields stay absent.
 */
import OpenAI, {
  APIConnectionError,
  APIUserAbortError,
  AuthenticationError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
} from "openai";
import type { ChatMessage, ModelServerKind, ModelSettings, ModelTurn, ToolCall } from "./types.ts";
import type { ToolSchema } from "./tools.ts";
import { errorMessage, InfrastructureError, ModelRequestError } from "../base/errors.ts";

export interface CompletionRequest {
  messages: readonly ChatMessage[];
  /** Offered natively (`tools` in the request); hermes format puts them in the system prompt instead. */
  tools?: readonly ToolSchema[];
  maxTokens: number;
  signal?: AbortSignal;
  /** The trajectory's last turn from this client: a token-in client continues its sequence. */
  previous?: ModelTurn;
}

export interface ModelClient {
  /**
   * The client renders the model's chat template with `tools` itself (token-in): calls come back as Hermes text,
   * and tool results go to the template as they are, since the template wraps them.
   */
  readonly toolsInTemplate?: boolean;
  complete(request: CompletionRequest): Promise<ModelTurn>;
}

type Loose = Record<string, unknown>;

function numberArray(value: unknown): number[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === "number") ? (value as number[]) : undefined;
}

const TOKEN_ID = /^token_id:(\d+)$/;

/**
 * The request fields that make each server kind's chat endpoint return prompt and completion token ids.
 * - vLLM (vllm/entrypoints/openai/protocol.py, ChatCompletionRequest): `return_token_ids` fills
 *   `ChatCompletionResponse.prompt_token_ids` and `ChatCompletionResponseChoice.token_ids`.
 * - SGLang (python/sglang/srt/entrypoints/openai/protocol.py, ChatCompletionRequest, and serving_chat.py
 *   `_build_chat_response`): `return_prompt_token_ids` fills `choices[].prompt_token_ids`; `return_token_ids`
 *   fills `choices[].prompt_token_ids` and `choices[].token_ids` (the output ids). Both are sent, so a release
 *   that knows only the first still gives the prompt.
 * - openai: any other OpenAI-compatible server, which may refuse a field it does not know (OpenAI's own API answers
 *   400): vLLM's flag goes only with `logprobs`, as it always did; name the server kind to get ids without logprobs.
 */
export function tokenIdFlags(server: ModelServerKind, logprobs: boolean): Loose {
  if (server === "sglang") return { return_prompt_token_ids: true, return_token_ids: true };
  return server === "vllm" || logprobs ? { return_token_ids: true } : {};
}

type TokenFields = Pick<ModelTurn, "promptTokenIds" | "completionTokenIds" | "completionLogprobs">;

/** Where each kind puts the ids (the sources above); openai accepts any of the known places. */
const TOKEN_ID_READERS: Record<ModelServerKind, (response: Loose, choice: Loose) => { prompt?: number[]; completion?: number[] }> = {
  vllm: (response, choice) => ({ prompt: numberArray(response.prompt_token_ids), completion: numberArray(choice.token_ids) }),
  sglang: (_response, choice) => ({ prompt: numberArray(choice.prompt_token_ids), completion: numberArray(choice.token_ids) }),
  openai: (response, choice) => ({
    prompt: numberArray(response.prompt_token_ids) ?? numberArray(choice.prompt_token_ids),
    completion: numberArray(choice.token_ids) ?? numberArray(choice.output_token_ids),
  }),
};

/** Token ids and logprobs of one choice, from the fields the server kind fills. */
export function readTokenFields(server: ModelServerKind, response: Loose, choice: Loose): TokenFields {
  const out: TokenFields = {};
  const { prompt, completion } = TOKEN_ID_READERS[server](response, choice);
  if (prompt) out.promptTokenIds = prompt;
  const content = (choice.logprobs as Loose | null | undefined)?.content;
  const entries = Array.isArray(content) ? (content as Loose[]) : [];
  if (entries.length > 0 && entries.every((e) => typeof e.logprob === "number")) {
    out.completionLogprobs = entries.map((e) => e.logprob as number);
  }
  if (completion) out.completionTokenIds = completion;
  else if (entries.length > 0 && entries.every((e) => typeof e.token === "string" && TOKEN_ID.test(e.token))) {
    // vLLM's `return_tokens_as_token_ids`: logprob tokens spelled `token_id:N`.
    out.completionTokenIds = entries.map((e) => Number(TOKEN_ID.exec(e.token as string)?.[1]));
  }
  return out;
}

function toChatMessage(message: Loose): ChatMessage {
  const out: ChatMessage = { role: "assistant", content: typeof message.content === "string" ? message.content : null };
  if (Array.isArray(message.tool_calls) && message.tool_calls.length > 0) out.tool_calls = message.tool_calls as ToolCall[];
  const reasoning = message.reasoning_content ?? message.reasoning;
  if (typeof reasoning === "string" && reasoning !== "") out.reasoning_content = reasoning;
  return out;
}

/**
 * Connection failures, 5xx and 429 (after the client's own retries) mean the endpoint is down: retry elsewhere.
 * 401, 403 and 404 (a bad key, no access, a model name it does not serve) refuse every request of the job alike:
 * not the agent's doing either, so never a score (it would be 0 for a trajectory that never got a turn).
 */
export function classifyModelError(error: unknown): Error {
  if (error instanceof APIUserAbortError) return error;
  if (error instanceof APIConnectionError || error instanceof InternalServerError || error instanceof RateLimitError) {
    return new InfrastructureError("model", `model endpoint unavailable: ${error.message}`, { cause: error });
  }
  if (error instanceof AuthenticationError || error instanceof PermissionDeniedError || error instanceof NotFoundError) {
    return new InfrastructureError("model", `model endpoint refused the request: ${error.message}`, { cause: error });
  }
  return new ModelRequestError(errorMessage(error), { cause: error });
}

export function createModelClient(settings: ModelSettings): ModelClient {
  const client = new OpenAI({ baseURL: settings.baseURL, apiKey: settings.apiKey ?? "none", maxRetries: 2, timeout: 600_000 });
  return {
    async complete(request) {
      const body: Loose = {
        model: settings.model,
        messages: request.messages,
        temperature: settings.temperature,
        top_p: settings.topP,
        max_tokens: request.maxTokens,
        n: 1,
      };
      if (settings.seed !== undefined) body.seed = settings.seed;
      if (request.tools && request.tools.length > 0) body.tools = request.tools;
      Object.assign(body, tokenIdFlags(settings.server, settings.logprobs));
      if (settings.logprobs) body.logprobs = true;
      const started = performance.now();
      let response: Loose;
      try {
        response = (await client.chat.completions.create(body as never, { signal: request.signal })) as unknown as Loose;
      } catch (error) {
        throw classifyModelError(error);
      }
      const latencyMs = performance.now() - started;
      const choice = (response.choices as Loose[] | undefined)?.[0];
      if (!choice || typeof choice.message !== "object" || choice.message === null) {
        throw new ModelRequestError("the endpoint returned no choice");
      }
      const usage = response.usage as Loose | undefined;
      return {
        message: toChatMessage(choice.message as Loose),
        finishReason: typeof choice.finish_reason === "string" ? choice.finish_reason : null,
        ...readTokenFields(settings.server, response, choice),
        ...(typeof usage?.prompt_tokens === "number" ? { promptTokens: usage.prompt_tokens } : {}),
        ...(typeof usage?.completion_tokens === "number" ? { completionTokens: usage.completion_tokens } : {}),
        latencyMs,
      };
    },
  };
}
