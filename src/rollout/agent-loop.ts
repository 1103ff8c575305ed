/**
 * The agent loop of one trajectory: ask the model, run the tools it calls in the leased slot, feed results
 * back, until it answers without tools or a limit is hit. Infrastructure failures propagate (the group core
 * retries them on another slot); everything the model does wrong is answered with an error it can read.
 */
import type { ModelClient } from "./model-client.ts";
import { extractToolCalls, isMalformed, randomCallId, type IdSource, type ParsedCall } from "./toolcalls.ts";
import type { ToolRegistry, ToolSchema } from "./tools.ts";
import type {
  AgentResult,
  ChatMessage,
  LeasedSlot,
  ModelTurn,
  StopReason,
  ToolCallFormat,
  ToolCallRecord,
  TrajectoryLimits,
} from "./types.ts";
import { errorSummary, ModelRequestError, InfrastructureError } from "../base/errors.ts";
import { withTimeout } from "../base/timeout.ts";

export interface AgentLoopOptions {
  model: ModelClient;
  tools: ToolRegistry;
  slot: LeasedSlot;
  messages: readonly ChatMessage[];
  limits: TrajectoryLimits;
  format: ToolCallFormat;
  /** Completion tokens per model turn (model.sampling.maxTokens). */
  maxTokensPerTurn: number;
  signal?: AbortSignal;
  newId?: IdSource;
}

/** How long a local tool may overrun its own timeout before the loop gives up on it. */
const TOOL_GRACE_MS = 5_000;

/** Hermes-format models learn their tools from the system prompt, not from the request's `tools`. */
export function hermesToolPrompt(schemas: readonly ToolSchema[]): string {
  return [
    "You can call functions. Their signatures are inside <tools></tools>:",
    `<tools>\n${schemas.map((s) => JSON.stringify(s)).join("\n")}\n</tools>`,
    "To call one, write a JSON object with its name and arguments inside tags, one block per call:",
    '<tool_call>\n{"name": <function-name>, "arguments": <args-object>}\n</tool_call>',
    "Each result comes back inside <tool_response></tool_response>.",
  ].join("\n");
}

export function withToolPrompt(messages: readonly ChatMessage[], schemas: readonly ToolSchema[]): ChatMessage[] {
  const prompt = hermesToolPrompt(schemas);
  const [first, ...rest] = messages;
  if (first?.role === "system") return [{ ...first, content: `${first.content ?? ""}\n\n${prompt}` }, ...rest];
  return [{ role: "system", content: prompt }, ...messages];
}

/** About 4 chars a token. */
function estimateTokens(messages: readonly ChatMessage[]): number {
  return Math.ceil(messages.reduce((n, m) => n + (m.content?.length ?? 0) + JSON.stringify(m.tool_calls ?? []).length, 0) / 4);
}

/**
 * Tokens the trajectory holds so far: the endpoint's count for everything up to its last answer (the first
 * `counted` messages) when it reports one, plus an estimate of the tool results added since; else all estimated.
 */
function tokensUsed(messages: readonly ChatMessage[], last: ModelTurn | undefined, counted: number): number {
  if (last?.promptTokens !== undefined && last.completionTokens !== undefined) {
    return last.promptTokens + last.completionTokens + estimateTokens(messages.slice(counted));
  }
  return estimateTokens(messages);
}

function errorContent(error: string): string {
  return JSON.stringify({ error });
}

export async function runAgentLoop(options: AgentLoopOptions): Promise<AgentResult> {
  const { model, tools, slot, limits, format } = options;
  const newId = options.newId ?? randomCallId;
  const started = performance.now();
  const deadline = started + limits.trajectoryTimeoutSeconds * 1000;
  // A template-rendering client offers the tools through the template and reads calls as Hermes text itself.
  const inTemplate = model.toolsInTemplate === true;
  const parseAs: ToolCallFormat = inTemplate ? "hermes" : format;
  const ownPrompt = format === "hermes" && !inTemplate;
  const messages: ChatMessage[] = ownPrompt ? withToolPrompt(options.messages, tools.schemas) : [...options.messages];
  const turns: ModelTurn[] = [];
  const toolCalls: ToolCallRecord[] = [];
  /** Messages the endpoint's last reported usage covers. */
  let counted = 0;
  const finish = (stopReason: StopReason, error?: string): AgentResult => ({
    messages,
    turns,
    toolCalls,
    stopReason,
    durationMs: performance.now() - started,
    ...(error ? { error } : {}),
  });

  const runCall = async (call: ParsedCall, turn: number): Promise<{ content: string; finish: boolean }> => {
    const tool = tools.get(call.name);
    const begun = performance.now();
    const record = (ok: boolean, error?: string): void => {
      toolCalls.push({
        turn,
        name: call.name,
        arguments: call.rawArguments.slice(0, 200),
        ok,
        durationMs: performance.now() - begun,
        ...(error ? { error } : {}),
      });
    };
    if (!tool) {
      const error = `Unknown tool '${call.name}'. Available tools: ${JSON.stringify(tools.names)}`;
      record(false, error);
      return { content: errorContent(error), finish: false };
    }
    const timeoutMs = Math.max(1000, Math.min(limits.toolTimeoutSeconds * 1000, deadline - performance.now()));
    try {
      const outcome = await withTimeout(
        tool.run(call.arguments, { slot, timeoutMs, maxOutputBytes: limits.maxToolOutputBytes }),
        timeoutMs + TOOL_GRACE_MS,
        // Past its own timeout plus grace the call is stuck in the sandbox or the path to it: not the agent's doing.
        () =>
          new InfrastructureError("sandbox", `tool ${call.name} did not return within ${Math.round((timeoutMs + TOOL_GRACE_MS) / 1000)}s`),
      );
      record(outcome.ok, outcome.error);
      return { content: outcome.content, finish: outcome.finish === true };
    } catch (error) {
      if (error instanceof InfrastructureError) throw error;
      const message = `Tool execution failed: ${errorSummary(error)}`;
      record(false, message);
      return { content: errorContent(message), finish: false };
    }
  };

  for (let turn = 0; turn < limits.maxTurns; turn++) {
    if (options.signal?.aborted) return finish("aborted");
    const remainingMs = deadline - performance.now();
    if (remainingMs <= 0) return finish("timeout");
    const budget = limits.maxTokenLength - tokensUsed(messages, turns.at(-1), counted);
    if (budget <= 0) return finish("token_budget");
    const timeout = AbortSignal.timeout(Math.ceil(remainingMs));
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let answer: ModelTurn;
    try {
      answer = await model.complete({
        messages,
        ...(ownPrompt ? {} : { tools: tools.schemas }),
        ...(turns.length > 0 ? { previous: turns.at(-1) } : {}),
        maxTokens: Math.min(options.maxTokensPerTurn, budget),
        signal,
      });
    } catch (error) {
      if (timeout.aborted) return finish("timeout");
      if (options.signal?.aborted) return finish("aborted");
      if (error instanceof ModelRequestError) return finish("model_error", error.message);
      throw error;
    }
    turns.push(answer);
    const extracted = extractToolCalls(answer.message, parseAs, newId);
    if (extracted.format === "native") {
      // Ids of calls that had none were generated while parsing (one entry per call, in order): keep them.
      const ids = extracted.calls.map((c) => c.id);
      messages.push({ ...answer.message, tool_calls: (answer.message.tool_calls ?? []).map((c, i) => ({ ...c, id: ids[i] ?? c.id })) });
    } else {
      messages.push(answer.message);
    }
    counted = messages.length;
    if (extracted.calls.length === 0) return finish("natural");

    // Results go back as they are: chat templates of the Hermes and Qwen families wrap a tool message in
    // <tool_response> themselves (wrapping here too would nest the tags).
    const reply = (id: string, content: string): void => {
      messages.push({ role: "tool", tool_call_id: id, content });
    };
    let finished = false;
    for (const call of extracted.calls) {
      if (isMalformed(call)) {
        toolCalls.push({ turn, name: call.name ?? "", arguments: call.raw.slice(0, 200), ok: false, error: call.error, durationMs: 0 });
        reply(call.id, errorContent(`Malformed tool call: ${call.error}. Write each call as {"name": "<tool>", "arguments": {...}}.`));
        continue;
      }
      const result = await runCall(call, turn);
      reply(call.id, result.content);
      finished ||= result.finish;
    }
    if (finished) return finish("finish_tool");
  }
  return finish("max_turns");
}
