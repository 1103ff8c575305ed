/**
 * The model-facing tools, behind one registry. `terminal` runs in the trajectory's leased slot (schema and
 * result as the original's terminal tool); `submit` runs locally and ends the trajectory. Environments do not
 * use these: their setup/verify go through the env's own exec interface.
 */
import type { LeasedSlot } from "./types.ts";
import { errorMessage, InfrastructureError, isSandboxError } from "../base/errors.ts";

export interface ToolSchema {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ToolContext {
  slot: LeasedSlot;
  /** Upper bound of one call (limits.toolTimeoutSeconds, cut to what is left of the trajectory). */
  timeoutMs: number;
  maxOutputBytes: number;
}

export interface ToolOutcome {
  /** What the model reads back. */
  content: string;
  ok: boolean;
  error?: string;
  /** The trajectory ends after this call. */
  finish?: boolean;
}

export interface Tool {
  schema: ToolSchema;
  run(args: Record<string, unknown>, context: ToolContext): Promise<ToolOutcome>;
}

export const TIMEOUT_EXIT_CODE = 124;

/**
 * Keeps the last `maxBytes` of UTF-8 text with a notice in front, as the original terminal tool does.
 * `cutBefore`: the sandbox already dropped the start (its streams are capped too), so the notice is due even
 * when what is left fits.
 */
export function truncateTail(text: string, maxBytes: number, cutBefore = false): { text: string; truncated: boolean } {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes && !cutBefore) return { text, truncated: false };
  let start = Math.max(0, bytes.length - maxBytes);
  // Do not start inside a multi-byte character.
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
  const dropped = cutBefore ? "earlier output dropped" : `first ${start} bytes dropped`;
  return {
    text: `[output truncated: ${dropped}, last ${bytes.length - start} kept]\n${bytes.subarray(start).toString("utf8")}`,
    truncated: true,
  };
}

export const terminalTool: Tool = {
  schema: {
    type: "function",
    function: {
      name: "terminal",
      description:
        "Run a shell command in your workspace and get its output and exit code. Commands run non-interactively " +
        "(no editors, pagers or prompts); use flags such as -y and redirect input from files or heredocs.",
      parameters: {
        type: "object",
        properties: {
          command: { type: "string", description: "The bash command to run." },
          timeout: { type: "integer", minimum: 1, description: "Seconds before the command is killed (exit code 124)." },
        },
        required: ["command"],
      },
    },
  },
  async run(args, context) {
    const command = args.command;
    if (typeof command !== "string" || command.trim() === "") {
      const error = 'terminal needs a non-empty "command" string';
      return { content: JSON.stringify({ output: "", exit_code: -1, error }), ok: false, error };
    }
    const requested = typeof args.timeout === "number" && args.timeout >= 1 ? args.timeout * 1000 : context.timeoutMs;
    const timeoutMs = Math.min(requested, context.timeoutMs);
    let result;
    try {
      result = await context.slot.exec({ command, timeoutMs, maxOutputBytes: context.maxOutputBytes });
    } catch (error) {
      // The command's own failure is a result (its exit code); a call that could not run is never the agent's
      // fault, so it ends the trajectory as infrastructure (retried on another slot), not as a tool result.
      if (isSandboxError(error, "configuration") || (error instanceof Error && error.name === "AbortError")) throw error;
      throw new InfrastructureError("sandbox", `terminal: ${errorMessage(error)}`, { cause: error });
    }
    const combined = result.stderr === "" ? result.stdout : result.stdout === "" ? result.stderr : `${result.stdout}\n${result.stderr}`;
    const output = truncateTail(combined, context.maxOutputBytes, result.truncated).text;
    const exitCode = result.timedOut ? TIMEOUT_EXIT_CODE : result.exitCode;
    const error = result.timedOut ? `command timed out after ${Math.round(timeoutMs / 1000)}s` : null;
    return { content: JSON.stringify({ output, exit_code: exitCode, error }), ok: exitCode === 0 };
  },
};

/** A local tool: the model says it is done, with a summary of its change. */
export const submitTool: Tool = {
  schema: {
    type: "function",
    function: {
      name: "submit",
      description: "Call when you have finished the task, with a short summary of what you changed. Ends your turn.",
      parameters: {
        type: "object",
        properties: { summary: { type: "string", description: "What you changed and why." } },
        required: ["summary"],
      },
    },
  },
  async run(args) {
    const summary = typeof args.summary === "string" ? args.summary : "";
    return { content: JSON.stringify({ status: "submitted", summary }), ok: true, finish: true };
  },
};

export class ToolRegistry {
  readonly #tools = new Map<string, Tool>();

  constructor(tools: readonly Tool[]) {
    for (const tool of tools) this.#tools.set(tool.schema.function.name, tool);
  }

  get schemas(): ToolSchema[] {
    return [...this.#tools.values()].map((t) => t.schema);
  }

  get names(): string[] {
    return [...this.#tools.keys()];
  }

  get(name: string): Tool | undefined {
    return this.#tools.get(name);
  }
}

export function defaultTools(): ToolRegistry {
  return new ToolRegistry([terminalTool, submitTool]);
}
