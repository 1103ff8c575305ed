/**
 * Scored output, trainer-ready and pure: one Atropos `ScoredDataGroup` per item (fields as atroposlib's
 * BaseEnv sends them to `/scored_data`) plus our `metadata`.
 *
 * Tokens come only from the endpoint. A trajectory's sequence is built from its turns' `prompt_token_ids` and
 * completion token ids: each turn's prompt must extend the sequence so far (then the new prompt tokens are
 * masked with -100 and the completion tokens are trained), else the sequence restarts at that turn, as
 * Atropos' ManagedServer starts a new node. When the endpoint returned no token ids the trajectory's `tokens`
 * and `masks` are empty and `metadata.trajectories[i].tokens` is "absent": we never invent tokens from a
 * tokenizer we do not have. The built-in model server always returns them.
 */
import { z } from "zod";
import { chatRoles, stopReasons, type AgentResult, type ChatMessage, type ModelTurn, type StopReason, type ToolCall } from "./types.ts";

export const MASKED = -100;

export interface TokenSequence {
  tokens: number[];
  masks: number[];
  /** 1.0 on prompt positions (as ManagedServer does), the sampled logprob on completion positions. */
  logprobs: number[] | null;
  /** Turns whose prompt did not extend the sequence, so it restarted there. */
  restarts: number;
}

function startsWith(sequence: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > sequence.length) return false;
  for (let i = 0; i < prefix.length; i++) if (sequence[i] !== prefix[i]) return false;
  return true;
}

export function assembleTokens(turns: readonly ModelTurn[]): TokenSequence | null {
  if (turns.length === 0) return null;
  let tokens: number[] = [];
  let masks: number[] = [];
  let logprobs: number[] | null = [];
  let restarts = 0;
  for (const turn of turns) {
    const prompt = turn.promptTokenIds;
    const completion = turn.completionTokenIds;
    if (!prompt || !completion) return null;
    if (!startsWith(prompt, tokens)) {
      restarts++;
      tokens = [];
      masks = [];
      if (logprobs) logprobs = [];
    }
    const added = prompt.slice(tokens.length);
    tokens.push(...added, ...completion);
    masks.push(...added.map(() => MASKED), ...completion);
    const sampled = turn.completionLogprobs;
    if (logprobs && sampled && sampled.length === completion.length) logprobs.push(...added.map(() => 1.0), ...sampled);
    else logprobs = null;
  }
  return { tokens, masks, logprobs, restarts };
}

export interface TrajectoryTimings {
  acquireMs: number;
  setupMs: number;
  agentMs: number;
  verifyMs: number;
  totalMs: number;
  modelMs: number;
}

/** One finished, scored trajectory. */
export interface ScoredTrajectory {
  trajectoryId: string;
  /** 1 for the first try; higher after infrastructure retries. */
  attempt: number;
  score: number;
  agent: AgentResult;
  verification: Record<string, unknown>;
  sandbox: string;
  /** The sandbox's image, when the slot provider knows it. */
  image?: string;
  slot: number;
  timings: TrajectoryTimings;
}

export interface TrajectoryMetadata {
  trajectory_id: string;
  attempt: number;
  turns: number;
  stop_reason: StopReason;
  tool_calls: number;
  tool_errors: number;
  sandbox: string;
  /** The image of the sandbox the trajectory ran on, when known. */
  image?: string;
  slot: number;
  timings: TrajectoryTimings;
  tokens: "endpoint" | "absent";
  token_restarts: number;
  finish_reasons: (string | null)[];
  verification: Record<string, unknown>;
  error?: string;
}

export interface GroupMetadata {
  item_id: string;
  item_index: number;
  environment: string;
  group_size: number;
  /** Trajectory attempts made for the group: group_size when nothing was retried. */
  attempts: number;
  retries: number;
  duration_ms: number;
  trajectories: TrajectoryMetadata[];
}

export interface GenerationParams {
  temperature: number;
  top_p: number;
  max_tokens: number;
}

/** Atropos' ScoredDataGroup (atroposlib/envs/base.py) plus `metadata`, which trainers ignore. */
export interface ScoredDataGroup {
  tokens: number[][];
  masks: number[][];
  scores: number[];
  advantages: null;
  ref_logprobs: null;
  messages: ChatMessage[][];
  generation_params: GenerationParams;
  inference_logprobs: number[][] | null;
  group_overrides: { group_size: number };
  overrides: null;
  images: null;
  metadata: GroupMetadata;
}

/**
 * A ScoredDataGroup as a runner posts it to the controller, checked at intake. What trainers and sinks read is
 * checked to the type; objects are loose, so what the endpoint or the environment added (tool calls, verification
 * details) is kept as sent. Keys are in `buildScoredGroup`'s order, which parsing keeps.
 */
const chatMessageSchema = z.looseObject({
  role: z.enum(chatRoles),
  content: z.string().nullable(),
  tool_calls: z.array(z.custom<ToolCall>()).optional(),
  tool_call_id: z.string().optional(),
  name: z.string().optional(),
  reasoning_content: z.string().optional(),
});

const trajectoryMetadataSchema = z.looseObject({
  trajectory_id: z.string(),
  attempt: z.int(),
  turns: z.int(),
  stop_reason: z.enum(stopReasons),
  tool_calls: z.int(),
  tool_errors: z.int(),
  sandbox: z.string(),
  image: z.string().optional(),
  slot: z.int(),
  timings: z.looseObject({
    acquireMs: z.number(),
    setupMs: z.number(),
    agentMs: z.number(),
    verifyMs: z.number(),
    totalMs: z.number(),
    modelMs: z.number(),
  }),
  tokens: z.enum(["endpoint", "absent"]),
  token_restarts: z.int(),
  finish_reasons: z.array(z.string().nullable()),
  verification: z.record(z.string(), z.unknown()),
  error: z.string().optional(),
});

export const scoredDataGroupSchema: z.ZodType<ScoredDataGroup, ScoredDataGroup> = z.looseObject({
  tokens: z.array(z.array(z.int())),
  masks: z.array(z.array(z.int())),
  scores: z.array(z.number()),
  advantages: z.null(),
  ref_logprobs: z.null(),
  messages: z.array(z.array(chatMessageSchema)),
  generation_params: z.looseObject({ temperature: z.number(), top_p: z.number(), max_tokens: z.number() }),
  inference_logprobs: z.array(z.array(z.number())).nullable(),
  group_overrides: z.looseObject({ group_size: z.int() }),
  overrides: z.null(),
  images: z.null(),
  metadata: z.looseObject({
    item_id: z.string(),
    item_index: z.int(),
    environment: z.string(),
    group_size: z.int(),
    attempts: z.int(),
    retries: z.int(),
    duration_ms: z.number(),
    trajectories: z.array(trajectoryMetadataSchema),
  }),
});

export interface GroupInput {
  itemId: string;
  itemIndex: number;
  environment: string;
  trajectories: readonly ScoredTrajectory[];
  generation: GenerationParams;
  /** Attempts beyond the first, over the whole group. */
  retries: number;
  durationMs: number;
}

function trajectoryMetadata(t: ScoredTrajectory, sequence: TokenSequence | null): TrajectoryMetadata {
  return {
    trajectory_id: t.trajectoryId,
    attempt: t.attempt,
    turns: t.agent.turns.length,
    stop_reason: t.agent.stopReason,
    tool_calls: t.agent.toolCalls.length,
    tool_errors: t.agent.toolCalls.filter((c) => !c.ok).length,
    sandbox: t.sandbox,
    ...(t.image !== undefined ? { image: t.image } : {}),
    slot: t.slot,
    timings: t.timings,
    tokens: sequence ? "endpoint" : "absent",
    token_restarts: sequence?.restarts ?? 0,
    finish_reasons: t.agent.turns.map((turn) => turn.finishReason),
    verification: t.verification,
    ...(t.agent.error ? { error: t.agent.error } : {}),
  };
}

export function buildScoredGroup(input: GroupInput): ScoredDataGroup {
  const sequences = input.trajectories.map((t) => assembleTokens(t.agent.turns));
  const allLogprobs = sequences.every((s) => s?.logprobs);
  return {
    tokens: sequences.map((s) => s?.tokens ?? []),
    masks: sequences.map((s) => s?.masks ?? []),
    scores: input.trajectories.map((t) => t.score),
    advantages: null,
    ref_logprobs: null,
    messages: input.trajectories.map((t) => t.agent.messages),
    generation_params: input.generation,
    inference_logprobs: allLogprobs ? sequences.map((s) => s?.logprobs ?? []) : null,
    group_overrides: { group_size: input.trajectories.length },
    overrides: null,
    images: null,
    metadata: {
      item_id: input.itemId,
      item_index: input.itemIndex,
      environment: input.environment,
      group_size: input.trajectories.length,
      attempts: input.trajectories.length + input.retries,
      retries: input.retries,
      duration_ms: input.durationMs,
      trajectories: input.trajectories.map((t, i) => trajectoryMetadata(t, sequences[i] ?? null)),
    },
  };
}

/** True when every trajectory carries endpoint tokens: only such groups can train. */
export function hasTokens(group: ScoredDataGroup): boolean {
  return group.metadata.trajectories.every((t) => t.tokens === "endpoint");
}
