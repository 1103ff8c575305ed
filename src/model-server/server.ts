/**
 * The built-in OpenAI-compatible model endpoint: `/v1/models` and `/v1/chat/completions` with the oracle or
 * noop policy, both tool-call formats, logprobs and vLLM-style token ids (`prompt_token_ids`,
 * `choices[].token_ids`, `return_tokens_as_token_ids`) on a toy vocabulary. Given the job's tokenizer, it also
 * serves token-in generation on that real vocabulary as vLLM (`/v1/completions`) and SGLang (`/generate`) do.
 *
 * Format: native `tool_calls` when the request offers `tools`, Hermes `<tool_call>` text otherwise; the
 * server's `format` option or a model name ending in `-native` / `-hermes` forces one.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { logger } from "../base/log.ts";
import { hermesToolCallText } from "../rollout/toolcalls.ts";
import type { ChatTokenizer } from "../rollout/chat-tokenizer.ts";
import type { ChatMessage, ToolCall } from "../rollout/types.ts";
import { nextAction, type OracleTask, type PolicyName } from "./policy.ts";
import { chatmlMessages, promptIds, tokenAnswer, tokenErrorBody, TOKEN_ROUTES, type TokenEndpoint } from "./token-endpoints.ts";
import { assistantBody, renderCompletion, renderPrompt, toyLogprob } from "./tokenizer.ts";

const log = logger("model-server");

export interface ModelServerOptions {
  policy: PolicyName;
  tasks?: readonly OracleTask[];
  format?: "auto" | "native" | "hermes";
  port?: number;
  host?: string;
  /** Name listed by /v1/models. */
  model?: string;
  /** The job's tokenizer, with a ChatML template: enables the token-in endpoints. */
  tokenizer?: ChatTokenizer;
}

export interface ModelServer {
  url: string;
  /** baseURL for OpenAI clients: url + /v1. */
  baseURL: string;
  readonly requests: number;
  close(): Promise<void>;
}

interface CompletionBody {
  model?: string;
  messages?: ChatMessage[];
  tools?: unknown[];
  logprobs?: boolean;
  return_token_ids?: boolean;
  return_tokens_as_token_ids?: boolean;
}

function chooseFormat(body: CompletionBody, configured: ModelServerOptions["format"]): "native" | "hermes" {
  if (body.model?.endsWith("-native")) return "native";
  if (body.model?.endsWith("-hermes")) return "hermes";
  if (configured === "native" || configured === "hermes") return configured;
  return Array.isArray(body.tools) && body.tools.length > 0 ? "native" : "hermes";
}

/** One completion, as an OpenAI chat.completion object with the token extensions. */
export function complete(body: CompletionBody, options: ModelServerOptions): Record<string, unknown> {
  const messages = body.messages ?? [];
  const action = nextAction(options.policy, messages, options.tasks ?? []);
  const format = chooseFormat(body, options.format);
  let message: { role: "assistant"; content: string | null; tool_calls?: ToolCall[] };
  if (action.kind === "answer") message = { role: "assistant", content: action.text };
  else if (format === "native") {
    const call: ToolCall = {
      id: `call_${randomBytes(4).toString("hex")}`,
      type: "function",
      function: { name: action.name, arguments: JSON.stringify(action.arguments) },
    };
    message = { role: "assistant", content: null, tool_calls: [call] };
  } else message = { role: "assistant", content: hermesToolCallText(action.name, action.arguments) };

  const prompt = renderPrompt(messages);
  const completion = renderCompletion(assistantBody(message));
  const choice: Record<string, unknown> = {
    index: 0,
    message,
    finish_reason: message.tool_calls ? "tool_calls" : "stop",
    logprobs: body.logprobs
      ? {
          content: completion.map((t) => ({
            token: body.return_tokens_as_token_ids ? `token_id:${t.id}` : t.text,
            logprob: toyLogprob(t.id),
            bytes: [...Buffer.from(t.text)],
            top_logprobs: [],
          })),
        }
      : null,
  };
  const response: Record<string, unknown> = {
    id: `chatcmpl-${randomBytes(8).toString("hex")}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: body.model ?? options.model ?? "hermes",
    choices: [choice],
    usage: { prompt_tokens: prompt.length, completion_tokens: completion.length, total_tokens: prompt.length + completion.length },
  };
  if (body.return_token_ids) {
    response.prompt_token_ids = prompt.map((t) => t.id);
    choice.token_ids = completion.map((t) => t.id);
  }
  return response;
}

/** One token-in completion: the policy reads the decoded prompt and writes Hermes text on the real vocabulary. */
export function completeTokens(kind: TokenEndpoint, body: Record<string, unknown>, options: ModelServerOptions, tokenizer: ChatTokenizer) {
  const prompt = promptIds(kind, body);
  if (typeof prompt === "string") return { status: 400, body: tokenErrorBody(kind, prompt) };
  const action = nextAction(options.policy, chatmlMessages(tokenizer.decode(prompt)), options.tasks ?? []);
  const text = action.kind === "answer" ? action.text : hermesToolCallText(action.name, action.arguments);
  const ids = tokenizer.encode(text + tokenizer.eosToken);
  return { status: 200, body: tokenAnswer(kind, body, prompt, ids, tokenizer) };
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const modelName = options.model ?? "hermes";
  const state = { requests: 0 };
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method === "GET" && path === "/v1/models") {
      send(response, 200, { object: "list", data: [{ id: modelName, object: "model", created: 0, owned_by: "hermes-rollouts" }] });
      return;
    }
    if (request.method === "POST" && path === "/v1/chat/completions") {
      readJson(request)
        .then((body) => {
          const parsed = body as CompletionBody;
          if (!Array.isArray(parsed.messages)) {
            send(response, 400, { error: { message: "messages must be an array", type: "invalid_request_error" } });
            return;
          }
          state.requests++;
          send(response, 200, complete(parsed, options));
        })
        .catch((error: unknown) => send(response, 400, { error: { message: String(error), type: "invalid_request_error" } }));
      return;
    }
    const tokenKind = (Object.keys(TOKEN_ROUTES) as TokenEndpoint[]).find((kind) => TOKEN_ROUTES[kind] === path);
    const tokenizer = options.tokenizer;
    if (request.method === "POST" && tokenKind && tokenizer) {
      readJson(request)
        .then((body) => {
          const answer = completeTokens(tokenKind, body as Record<string, unknown>, options, tokenizer);
          if (answer.status === 200) state.requests++;
          send(response, answer.status, answer.body);
        })
        .catch((error: unknown) => send(response, 400, tokenErrorBody(tokenKind, String(error))));
      return;
    }
    send(response, 404, { error: { message: `no route ${request.method} ${path}`, type: "not_found" } });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.address}:${address.port}`;
  log.info({ url, policy: options.policy, tasks: options.tasks?.length ?? 0 }, "model server listening");
  return {
    url,
    baseURL: `${url}/v1`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
