/**
 * The built-in model's policies, pure: given the conversation so far, the next assistant action.
 * `oracle` finds its task by id in the prompt, inspects the workspace, runs the task's solving commands one
 * terminal call at a time, then answers; `noop` answers at once without acting.
 */
import type { ChatMessage } from "../rollout/types.ts";

export type PolicyName = "oracle" | "noop";

export interface OracleTask {
  id: string;
  /** The task's user prompt, as the environment builds it: matched exactly, before ids are searched. */
  prompt?: string;
  /** Shell commands that solve the task, run in the slot workspace in order. */
  commands: string[];
}

export type Action = { kind: "tool"; name: string; arguments: Record<string, unknown> } | { kind: "answer"; text: string };

export const INSPECT_COMMAND = "pwd && ls -la && (git status --short 2>/dev/null || true)";

/**
 * The task whose prompt is one of the user messages, else whose id appears in them (the longest id wins so
 * `t-1` never shadows `t-10`).
 */
export function findTask(messages: readonly ChatMessage[], tasks: readonly OracleTask[]): OracleTask | undefined {
  const users = messages.filter((m) => m.role === "user").map((m) => m.content ?? "");
  const byPrompt = tasks.find((t) => t.prompt !== undefined && users.includes(t.prompt));
  if (byPrompt) return byPrompt;
  const text = users.join("\n");
  return [...tasks].sort((a, b) => b.id.length - a.id.length).find((t) => text.includes(t.id));
}

export function nextAction(policy: PolicyName, messages: readonly ChatMessage[], tasks: readonly OracleTask[]): Action {
  if (policy === "noop") return { kind: "answer", text: "I will not make any changes." };
  const task = findTask(messages, tasks);
  if (!task) return { kind: "answer", text: "I do not know this task, so I leave the workspace unchanged." };
  const script = [INSPECT_COMMAND, ...task.commands];
  const step = messages.filter((m) => m.role === "assistant").length;
  const command = script[step];
  if (command !== undefined) return { kind: "tool", name: "terminal", arguments: { command } };
  return { kind: "answer", text: `I inspected the repository and applied the fix for ${task.id} (${task.commands.length} commands).` };
}
