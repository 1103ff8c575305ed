/**
 * A deterministic toy tokenizer and ChatML-style template for the built-in model server. It is not a real
 * vocabulary; it exists so the training path (token ids, masks, logprobs) runs end to end without a GPU.
 * Each message renders as `<|im_start|>role\n` + body + `<|im_end|>\n`, each part tokenized on its own, so a
 * prompt that contains an earlier completion extends the earlier prompt + completion token for token.
 */
import type { ChatMessage } from "../rollout/types.ts";
import { hermesToolCallText } from "../rollout/toolcalls.ts";

export const IM_START = 1;
export const IM_END = 2;
const VOCAB = 50_000;
const FIRST_ORDINARY = 16;

export interface Token {
  id: number;
  text: string;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** Words, single punctuation marks and whitespace runs, each hashed to an id. */
export function tokenize(text: string): Token[] {
  return (text.match(/\s+|[A-Za-z0-9_]+|[^\sA-Za-z0-9_]/g) ?? []).map((piece) => ({
    id: FIRST_ORDINARY + (fnv1a(piece) % (VOCAB - FIRST_ORDINARY)),
    text: piece,
  }));
}

/** A deterministic stand-in for a sampled token's logprob, in [-0.97, -0.01] (never -0, which JSON sends as 0). */
export function toyLogprob(id: number): number {
  return -((id % 97) + 1) / 100;
}

/** What an assistant message says, tool calls written as Hermes text (how Hermes templates render them). */
export function assistantBody(message: Pick<ChatMessage, "content" | "tool_calls">): string {
  const calls = (message.tool_calls ?? []).map((c) => {
    let args: Record<string, unknown> = {};
    try {
      args = JSON.parse(c.function.arguments) as Record<string, unknown>;
    } catch {
      args = { raw: c.function.arguments };
    }
    return hermesToolCallText(c.function.name, args);
  });
  return [message.content ?? "", ...calls].filter((part) => part !== "").join("\n");
}

const special = (id: number, text: string): Token => ({ id, text });

function header(role: string): Token[] {
  return [special(IM_START, "<|im_start|>"), ...tokenize(`${role}\n`)];
}

const FOOTER: Token[] = [special(IM_END, "<|im_end|>"), ...tokenize("\n")];

/** The prompt: every message, then the assistant header the completion continues. */
export function renderPrompt(messages: readonly ChatMessage[]): Token[] {
  const tokens: Token[] = [];
  for (const m of messages) {
    const body = m.role === "assistant" ? assistantBody(m) : (m.content ?? "");
    tokens.push(...header(m.role), ...tokenize(body), ...FOOTER);
  }
  tokens.push(...header("assistant"));
  return tokens;
}

/** The completion: the body and the end-of-turn token (the newline after it belongs to the next prompt). */
export function renderCompletion(body: string): Token[] {
  return [...tokenize(body), special(IM_END, "<|im_end|>")];
}
