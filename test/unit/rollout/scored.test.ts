import assert from "node:assert/strict";
import { test } from "node:test";
import {
  assembleTokens,
  buildScoredGroup,
  hasTokens,
  MASKED,
  scoredDataGroupSchema,
  type ScoredTrajectory,
} from "../../../src/rollout/scored.ts";
import type { AgentResult, ModelTurn } from "../../../src/rollout/types.ts";

const turn = (prompt: number[] | undefined, completion: number[] | undefined, logprobs?: number[]): ModelTurn => ({
  message: { role: "assistant", content: "x" },
  finishReason: "stop",
  latencyMs: 2,
  ...(prompt ? { promptTokenIds: prompt } : {}),
  ...(completion ? { completionTokenIds: completion } : {}),
  ...(logprobs ? { completionLogprobs: logprobs } : {}),
});

test("turns that extend each other make one sequence: prompts masked, completions trained", () => {
  const seq = assembleTokens([turn([1, 2], [3, 4], [-0.1, -0.2]), turn([1, 2, 3, 4, 5, 6], [7], [-0.3])]);
  assert.deepEqual(seq, {
    tokens: [1, 2, 3, 4, 5, 6, 7],
    masks: [MASKED, MASKED, 3, 4, MASKED, MASKED, 7],
    logprobs: [1, 1, -0.1, -0.2, 1, 1, -0.3],
    restarts: 0,
  });
});

test("a prompt that does not extend the sequence restarts it there", () => {
  const seq = assembleTokens([turn([1, 2], [3]), turn([9, 9], [4])]);
  assert.deepEqual(seq?.tokens, [9, 9, 4]);
  assert.equal(seq?.restarts, 1);
  assert.equal(seq?.logprobs, null);
});

test("no token ids from the endpoint: tokens absent, never invented", () => {
  assert.equal(assembleTokens([turn(undefined, [1])]), null);
  assert.equal(assembleTokens([turn([1], undefined)]), null);
  assert.equal(assembleTokens([]), null);
});

function trajectory(score: number, turns: ModelTurn[], attempt = 1): ScoredTrajectory {
  const agent: AgentResult = { messages: [{ role: "user", content: "hi" }], turns, toolCalls: [], stopReason: "natural", durationMs: 5 };
  const timings = { acquireMs: 1, setupMs: 2, agentMs: 3, verifyMs: 4, totalMs: 10, modelMs: 2 };
  return { trajectoryId: `t${score}`, attempt, score, agent, verification: { passed: score === 1 }, sandbox: "sb", slot: 2, timings };
}

test("buildScoredGroup has the Atropos ScoredDataGroup fields and our metadata", () => {
  const group = buildScoredGroup({
    itemId: "item-1",
    itemIndex: 0,
    environment: "swe-smith-oracle",
    trajectories: [trajectory(1, [turn([1], [2], [-0.5])]), trajectory(0, [turn([1], [3], [-0.25])], 2)],
    generation: { temperature: 1, top_p: 1, max_tokens: 64 },
    retries: 1,
    durationMs: 42,
  });
  assert.deepEqual(
    Object.keys(group).sort(),
    [
      "advantages",
      "group_overrides",
      "generation_params",
      "images",
      "inference_logprobs",
      "masks",
      "messages",
      "metadata",
      "overrides",
      "ref_logprobs",
      "scores",
      "tokens",
    ].sort(),
  );
  assert.deepEqual(group.tokens, [
    [1, 2],
    [1, 3],
  ]);
  assert.deepEqual(group.masks, [
    [MASKED, 2],
    [MASKED, 3],
  ]);
  assert.deepEqual(group.scores, [1, 0]);
  assert.deepEqual(group.inference_logprobs, [
    [1, -0.5],
    [1, -0.25],
  ]);
  assert.deepEqual(group.group_overrides, { group_size: 2 });
  assert.equal(group.messages.length, 2);
  assert.equal(group.metadata.item_id, "item-1");
  assert.equal(group.metadata.attempts, 3);
  assert.deepEqual(
    group.metadata.trajectories.map((t) => [t.attempt, t.sandbox, t.slot, t.tokens]),
    [
      [1, "sb", 2, "endpoint"],
      [2, "sb", 2, "endpoint"],
    ],
  );
  assert.ok(hasTokens(group));
});

test("one trajectory without tokens: its tokens are empty, logprobs dropped, group not trainable", () => {
  const group = buildScoredGroup({
    itemId: "i",
    itemIndex: 3,
    environment: "e",
    trajectories: [trajectory(1, [turn([1], [2], [-0.5])]), trajectory(1, [turn(undefined, undefined)])],
    generation: { temperature: 1, top_p: 1, max_tokens: 8 },
    retries: 0,
    durationMs: 1,
  });
  assert.deepEqual(group.tokens, [[1, 2], []]);
  assert.equal(group.inference_logprobs, null);
  assert.equal(group.metadata.trajectories[1]?.tokens, "absent");
  assert.equal(hasTokens(group), false);
});

test("the intake schema keeps a group as the runner built it, tool calls and extra fields included", () => {
  const toolCall = { id: "c1", type: "function" as const, function: { name: "terminal", arguments: '{"command":"ls"}' }, index: 0 };
  const withTools: ModelTurn = { ...turn([1], [2]), message: { role: "assistant", content: null, tool_calls: [toolCall] } };
  const failed = trajectory(0, [withTools]);
  failed.agent = { ...failed.agent, messages: [...failed.agent.messages, withTools.message], stopReason: "model_error", error: "boom" };
  const group = buildScoredGroup({
    itemId: "item-1",
    itemIndex: 3,
    environment: "shell-task",
    trajectories: [trajectory(1, [turn([1], [2], [-0.5])]), failed],
    generation: { temperature: 1, top_p: 1, max_tokens: 64 },
    retries: 0,
    durationMs: 7,
  });
  const sent = JSON.parse(JSON.stringify({ ...group, extra: { kept: true } })) as unknown;
  assert.equal(JSON.stringify(scoredDataGroupSchema.parse(sent)), JSON.stringify(sent));
});

test("the intake schema refuses a group a trainer could not read, naming the field", () => {
  const group = buildScoredGroup({
    itemId: "item-1",
    itemIndex: 0,
    environment: "shell-task",
    trajectories: [trajectory(1, [turn([1], [2])])],
    generation: { temperature: 1, top_p: 1, max_tokens: 64 },
    retries: 0,
    durationMs: 7,
  });
  const result = scoredDataGroupSchema.safeParse({ ...group, tokens: [[1, "2"]] });
  assert.deepEqual(
    result.error?.issues.map((issue) => issue.path),
    [["tokens", 0, 1]],
  );
});
