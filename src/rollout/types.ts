/**
 * Types shared by the trajectory/group core. The core is used twice: by the embedded `hermes-rollouts run`
 * (slots from an in-process SlotPool) and by the cluster's runner pods (slots over the runners' API), so it
 * knows slots only through `SlotProvider`.
 */
import type { ExecRequest, ExecResult } from "../backends/types.ts";

export const chatRoles = ["system", "user", "assistant", "tool"] as const;

/** An OpenAI-format chat message as kept in trajectories and sent to trainers. */
export interface ChatMessage {
  role: (typeof chatRoles)[number];
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
  reasoning_content?: string;
}

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A slot held by one trajectory from setup to verification. */
export interface LeasedSlot {
  /** Sandbox id and slot index, for metadata and logs. */
  readonly sandbox: string;
  readonly slot: number;
  /** The sandbox's image, when the provider knows it (for metadata). */
  readonly image?: string;
  exec(request: Omit<ExecRequest, "slot">): Promise<ExecResult>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array | string): Promise<void>;
  /**
   * Returns the slot (reset before reuse). `broken: true` says the trajectory saw an infrastructure failure
   * on it, so the provider should not hand the same slot out again before checking it.
   */
  release(options?: { broken?: boolean }): Promise<void>;
}

export interface SlotProvider {
  /**
   * `image`: the item's sandbox image (spec.environment.image; absent: the pool's). `group`: a placement key (the
   * group's id): the pool puts the slots of one group on one sandbox where its free slots allow.
   */
  acquire(options: { trajectoryId: string; image?: string; group?: string; signal?: AbortSignal }): Promise<LeasedSlot>;
}

export type ToolCallFormat = "auto" | "native" | "hermes";

/** Which server's chat extensions to use for token ids (spec.model.server). */
export type ModelServerKind = "openai" | "vllm" | "sglang";

export interface ModelSettings {
  baseURL: string;
  model: string;
  apiKey?: string;
  toolCallFormat: ToolCallFormat;
  temperature: number;
  topP: number;
  maxTokens: number;
  seed?: number;
  logprobs: boolean;
  server: ModelServerKind;
}

export interface TrajectoryLimits {
  maxTurns: number;
  toolTimeoutSeconds: number;
  trajectoryTimeoutSeconds: number;
  maxTokenLength: number;
  maxToolOutputBytes: number;
}

/** One model call as the endpoint answered it; token fields only when the endpoint returned them. */
export interface ModelTurn {
  message: ChatMessage;
  finishReason: string | null;
  promptTokenIds?: number[];
  completionTokenIds?: number[];
  completionLogprobs?: number[];
  promptTokens?: number;
  completionTokens?: number;
  latencyMs: number;
}

/** Why the agent loop ended. `natural`: the model answered without tool calls. */
export const stopReasons = ["natural", "finish_tool", "max_turns", "timeout", "token_budget", "model_error", "aborted"] as const;
export type StopReason = (typeof stopReasons)[number];

export interface ToolCallRecord {
  turn: number;
  name: string;
  arguments: string;
  ok: boolean;
  error?: string;
  durationMs: number;
}

export interface AgentResult {
  messages: ChatMessage[];
  turns: ModelTurn[];
  toolCalls: ToolCallRecord[];
  stopReason: StopReason;
  /** Set for stopReason model_error: what the endpoint said. */
  error?: string;
  durationMs: number;
}
