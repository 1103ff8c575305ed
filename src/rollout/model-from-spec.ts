/** The model client a RolloutJob's `model` section describes: token-in with a tokenizer, else chat completions. */
import type { RolloutJobSpec } from "../api/index.ts";
import type { ChatTokenizer } from "./chat-tokenizer.ts";
import { createModelClient, type ModelClient } from "./model-client.ts";
import { createTokenInClient } from "./token-client.ts";
import type { ModelSettings } from "./types.ts";

/**
 * `baseURL` overrides the spec's (the built-in model server a runner started); `apiKey` is the key resolved from
 * the job's Secret or environment, if any; `tokenizer` is the job's (tokenizerFromSpec), loaded once and shared
 * with the built-in model server.
 */
export function modelClientFromSpec(
  model: RolloutJobSpec["model"],
  apiKey: string | undefined,
  baseURL?: string,
  tokenizer?: ChatTokenizer,
): ModelClient {
  const url = baseURL ?? model.baseURL;
  if (url === undefined) throw new Error("model.baseURL is required unless the built-in model server runs");
  const settings: ModelSettings = {
    baseURL: url,
    model: model.model,
    ...(apiKey ? { apiKey } : {}),
    toolCallFormat: model.toolCallFormat,
    temperature: model.sampling.temperature,
    topP: model.sampling.topP,
    maxTokens: model.sampling.maxTokens,
    ...(model.sampling.seed !== undefined ? { seed: model.sampling.seed } : {}),
    logprobs: model.logprobs,
    server: model.server,
  };
  const server = settings.server;
  if (tokenizer === undefined || server === "openai") return createModelClient(settings);
  return createTokenInClient({ ...settings, server }, tokenizer);
}
