/**
 * Chat-completion endpoints in the shapes vLLM and SGLang answer with, for the token-id extensions only (one canned
 * turn; no model). Written from the projects' protocol sources:
 * - vLLM, vllm/entrypoints/openai/protocol.py: `ChatCompletionRequest.return_token_ids` makes the response carry
 *   `ChatCompletionResponse.prompt_token_ids` and `ChatCompletionResponseChoice.token_ids`; `logprobs` alone gives
 *   `choices[].logprobs.content` and no ids.
 * - SGLang, python/sglang/srt/entrypoints/openai/protocol.py (`ChatCompletionRequest.return_prompt_token_ids`,
 *   `return_token_ids`; `ChatCompletionResponseChoice.prompt_token_ids`, `token_ids`) and serving_chat.py
 *   `_build_chat_response`: `choice.prompt_token_ids` when either flag is set, `choice.token_ids` (the output ids)
 *   with `return_token_ids`; nothing at the response's top level.
 * Each records the request bodies it got.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export type FakeChatServerKind = "vllm" | "sglang";

export const PROMPT_IDS = [151644, 872, 198, 6023];
export const COMPLETION_IDS = [9707, 0, 151645];
const LOGPROBS = [-0.25, -0.5, -0.01];

type Body = Record<string, unknown>;

function answer(kind: FakeChatServerKind, request: Body): Body {
  const choice: Body = { index: 0, message: { role: "assistant", content: "Hello!" }, finish_reason: "stop" };
  if (request.logprobs === true) {
    choice.logprobs = { content: LOGPROBS.map((logprob, i) => ({ token: `t${i}`, logprob, bytes: [], top_logprobs: [] })) };
  }
  const response: Body = {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 0,
    model: request.model,
    choices: [choice],
    usage: { prompt_tokens: PROMPT_IDS.length, completion_tokens: COMPLETION_IDS.length, total_tokens: 7 },
  };
  if (kind === "vllm" && request.return_token_ids === true) {
    response.prompt_token_ids = PROMPT_IDS;
    choice.token_ids = COMPLETION_IDS;
  }
  if (kind === "sglang") {
    if (request.return_prompt_token_ids === true || request.return_token_ids === true) choice.prompt_token_ids = PROMPT_IDS;
    if (request.return_token_ids === true) choice.token_ids = COMPLETION_IDS;
  }
  return response;
}

export async function startFakeChatServer(kind: FakeChatServerKind) {
  const requests: Body[] = [];
  const server = createServer((request, response) => {
    let text = "";
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => {
      const body = JSON.parse(text) as Body;
      requests.push(body);
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer(kind, body)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
