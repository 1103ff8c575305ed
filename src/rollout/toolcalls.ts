/**
 * Tool calls out of a model answer, pure: native OpenAI `tool_calls` and Hermes text
 * (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` in the content). A malformed call is kept as
 * such so the loop can answer it with an error the model can read, instead of dropping it or crashing.
 */
import { randomBytes } from "node:crypto";
import type { ChatMessage, ToolCall, ToolCallFormat } from "./types.ts";

export interface ParsedCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
  /** The arguments as the model wrote them (kept in records and trajectories). */
  rawArguments: string;
}

export interface MalformedCall {
  id: string;
  /** The tool name when it could be read. */
  name?: string;
  raw: string;
  error: string;
}

export type ExtractedCall = ParsedCall | MalformedCall;

export function isMalformed(call: ExtractedCall): call is MalformedCall {
  return "error" in call;
}

export interface ExtractedCalls {
  /** Text outside the tool-call blocks; null when there is none. */
  content: string | null;
  /** In the order the model wrote them: results go back in that order, each to its own call id. */
  calls: ExtractedCall[];
  /** Which form the calls came in, for feeding results back the same way. */
  format: "native" | "hermes" | "none";
}

export type IdSource = () => string;

export const randomCallId: IdSource = () => `call_${randomBytes(4).toString("hex")}`;

const OPEN = "<tool_call>";
const CLOSE = "</tool_call>";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Arguments must be a JSON object; a JSON string that holds an object is accepted too (seen from vLLM). */
export function parseArguments(raw: unknown): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (isRecord(raw)) return { ok: true, value: raw };
  if (raw === undefined || raw === null || raw === "") return { ok: true, value: {} };
  if (typeof raw !== "string") return { ok: false, error: `arguments must be a JSON object, got ${typeof raw}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    return { ok: false, error: `arguments are not valid JSON: ${(error as Error).message}` };
  }
  if (typeof parsed === "string") return parseArguments(parsed);
  return isRecord(parsed) ? { ok: true, value: parsed } : { ok: false, error: "arguments must be a JSON object" };
}

function parseHermesBlock(body: string, id: string): ParsedCall | MalformedCall {
  const raw = body.trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    return { id, raw, error: `tool call is not valid JSON: ${(error as Error).message}` };
  }
  if (!isRecord(parsed)) return { id, raw, error: 'tool call must be a JSON object {"name": ..., "arguments": {...}}' };
  const name = parsed.name;
  if (typeof name !== "string" || name === "") return { id, raw, error: 'tool call has no "name" string' };
  const args = parseArguments(parsed.arguments);
  if (!args.ok) return { id, name, raw, error: args.error };
  return { id, name, arguments: args.value, rawArguments: JSON.stringify(args.value) };
}

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";

/**
 * Where the answer proper starts: after the leading `<think>` block a reasoning model writes when the endpoint
 * does not split it off, or at the end when the answer was cut off while thinking. Calls it only considered in
 * there must not run. A `<think>` anywhere else is plain text (e.g. inside a command).
 */
function afterReasoning(text: string): number {
  const start = text.length - text.trimStart().length;
  if (!text.startsWith(THINK_OPEN, start)) return 0;
  const close = text.indexOf(THINK_CLOSE, start + THINK_OPEN.length);
  return close < 0 ? text.length : close + THINK_CLOSE.length;
}

/** Every `<tool_call>` block of a text; an unclosed last block still counts, as in the original parser. */
export function parseHermesText(text: string, newId: IdSource = randomCallId): ExtractedCalls {
  const first = text.indexOf(OPEN, afterReasoning(text));
  if (first < 0) return { content: text, calls: [], format: "none" };
  const calls: ExtractedCall[] = [];
  const outside: string[] = [text.slice(0, first)];
  let cursor = first;
  while (cursor >= 0) {
    const bodyStart = cursor + OPEN.length;
    const close = text.indexOf(CLOSE, bodyStart);
    const next = text.indexOf(OPEN, bodyStart);
    // A block ends at its closing tag, or (unclosed) at the next opening tag or the end of the text.
    const bodyEnd = close >= 0 && (next < 0 || close < next) ? close : next >= 0 ? next : text.length;
    calls.push(parseHermesBlock(text.slice(bodyStart, bodyEnd), newId()));
    const after = bodyEnd === close ? close + CLOSE.length : bodyEnd;
    cursor = text.indexOf(OPEN, after);
    outside.push(text.slice(after, cursor >= 0 ? cursor : text.length));
  }
  const content = outside.join("").trim();
  return { content: content === "" ? null : content, calls, format: "hermes" };
}

export function parseNativeCalls(toolCalls: readonly ToolCall[]): ExtractedCall[] {
  const calls: ExtractedCall[] = [];
  for (const call of toolCalls) {
    const name = call.function?.name;
    const id = call.id || randomCallId();
    const raw = call.function?.arguments ?? "";
    if (typeof name !== "string" || name === "") {
      calls.push({ id, raw, error: "tool call has no function name" });
      continue;
    }
    const args = parseArguments(raw);
    calls.push(args.ok ? { id, name, arguments: args.value, rawArguments: raw } : { id, name, raw, error: args.error });
  }
  return calls;
}

/** The calls of one assistant answer, read as `format` says: auto takes native calls first, then Hermes text. */
export function extractToolCalls(message: ChatMessage, format: ToolCallFormat, newId: IdSource = randomCallId): ExtractedCalls {
  const native = message.tool_calls ?? [];
  if (format !== "hermes" && native.length > 0) {
    return { content: message.content, calls: parseNativeCalls(native), format: "native" };
  }
  if (format !== "native" && typeof message.content === "string") return parseHermesText(message.content, newId);
  return { content: message.content, calls: [], format: "none" };
}

export function hermesToolCallText(name: string, args: Record<string, unknown>): string {
  return `${OPEN}\n${JSON.stringify({ name, arguments: args })}\n${CLOSE}`;
}
