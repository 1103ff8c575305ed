import { buildScoredGroup, type ScoredDataGroup } from "../../src/rollout/scored.ts";

export interface TurnTokens {
  prompt: number[];
  completion: number[];
  logprobs: number[];
}

/**
 * A one-turn ScoredDataGroup for item `index`, one trajectory per score, as a runner posts it: the assistant says
 * `content`, with the endpoint's `tokens` (none when null).
 */
export function scoredGroup(
  index: number,
  scores: readonly number[],
  {
    content = "done",
    tokens = { prompt: [1, 2], completion: [3], logprobs: [-0.5] },
  }: { content?: string; tokens?: TurnTokens | null } = {},
): ScoredDataGroup {
  const turn = {
    message: { role: "assistant" as const, content },
    finishReason: "stop",
    latencyMs: 1,
    ...(tokens ? { promptTokenIds: tokens.prompt, completionTokenIds: tokens.completion, completionLogprobs: tokens.logprobs } : {}),
  };
  const trajectories = scores.map((score, i) => ({
    trajectoryId: `t${index}-${i}`,
    attempt: 1,
    score,
    verification: {},
    sandbox: "sb",
    slot: 0,
    timings: { acquireMs: 0, setupMs: 0, agentMs: 0, verifyMs: 0, totalMs: 0, modelMs: 0 },
    agent: {
      messages: [{ role: "user" as const, content: "go" }, turn.message],
      turns: [turn],
      toolCalls: [],
      stopReason: "natural" as const,
      durationMs: 1,
    },
  }));
  return buildScoredGroup({
    itemId: `item-${index}`,
    itemIndex: index,
    environment: "shell-task",
    trajectories,
    generation: { temperature: 1, top_p: 1, max_tokens: 8 },
    retries: 0,
    durationMs: 1,
  });
}
