/**
 * The trajectory/group core, shared by the embedded `hermes-rollouts run` and the cluster's runner pods.
 * Per trajectory: lease a slot, env.setup, agent loop, env.verify → score, release the slot (reset).
 * Infrastructure failures (sandbox gone, endpoint down, the env's own commands breaking) are retried on a
 * fresh slot, up to `backoffLimit` retries per group, and never scored; the item yields exactly one group.
 */
import { randomUUID } from "node:crypto";
import type { RolloutJobSpec } from "../api/index.ts";
import type { Environment } from "../envs/types.ts";
import { logger } from "../base/log.ts";
import { runAgentLoop } from "./agent-loop.ts";
import type { ModelClient } from "./model-client.ts";
import { buildScoredGroup, type GenerationParams, type ScoredDataGroup, type ScoredTrajectory } from "./scored.ts";
import { defaultTools, type ToolRegistry } from "./tools.ts";
import type { ChatMessage, LeasedSlot, SlotProvider, ToolCallFormat, TrajectoryLimits } from "./types.ts";
import { errorSummary, GroupFailedError, isSandboxError, isInfrastructureError } from "../base/errors.ts";

const log = logger("runner");

export type GroupEvent =
  | { type: "trajectory-start"; itemId: string; trajectoryId: string; attempt: number }
  | { type: "trajectory-end"; itemId: string; trajectoryId: string; score: number }
  | { type: "trajectory-retry"; itemId: string; trajectoryId: string; attempt: number; error: string }
  | { type: "trajectory-failed"; itemId: string; trajectoryId: string; attempt: number; error: string };

/** Limits how many trajectories run at once across groups. */
export class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(permits: number) {
    this.#free = permits;
  }
  async use<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

export interface GroupOptions<Item> {
  env: Environment<Item>;
  slots: SlotProvider;
  model: ModelClient;
  format: ToolCallFormat;
  generation: GenerationParams;
  limits: TrajectoryLimits;
  groupSize: number;
  backoffLimit: number;
  /** spec.environment.image: the drive fills it per item (image.ts) and passes the result to `runGroup`. */
  imageTemplate?: string;
  tools?: ToolRegistry;
  gate?: Semaphore;
  signal?: AbortSignal;
  onEvent?: (event: GroupEvent) => void;
}

/** Failures of the infrastructure, not of the agent: retried on another slot. */
export function isRetryable(error: unknown): boolean {
  if (isInfrastructureError(error)) return true;
  return isSandboxError(error) && error.kind !== "configuration";
}

async function runTrajectory<Item>(
  item: Item,
  trajectoryId: string,
  attempt: number,
  options: GroupOptions<Item>,
  placement: { image: string | undefined; group: string },
): Promise<ScoredTrajectory> {
  const { env, limits } = options;
  const { image, group } = placement;
  const started = performance.now();
  const slot: LeasedSlot = await options.slots.acquire({
    trajectoryId,
    group,
    ...(image !== undefined ? { image } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const acquired = performance.now();
  let broken = false;
  try {
    await env.setup(item, slot, options.signal);
    const setUp = performance.now();
    const prompt = env.prompt(item);
    const messages: ChatMessage[] = [
      { role: "system", content: prompt.system },
      { role: "user", content: prompt.user },
    ];
    const agent = await runAgentLoop({
      model: options.model,
      tools: options.tools ?? defaultTools(),
      slot,
      messages,
      limits,
      format: options.format,
      maxTokensPerTurn: options.generation.max_tokens,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (agent.stopReason === "aborted") throw options.signal?.reason ?? new Error("aborted");
    const agentDone = performance.now();
    // Nothing to score: no answer from the model (as the original's base env), or no tool call in an
    // environment where doing nothing never passes (as the original's SWE env).
    const skipped =
      agent.turns.length === 0 ? "no model turn" : env.zeroWithoutToolCalls && agent.toolCalls.length === 0 ? "no tool calls" : undefined;
    const verification = skipped !== undefined ? { score: 0, details: { skipped } } : await env.verify(item, slot, options.signal);
    const finished = performance.now();
    return {
      trajectoryId,
      attempt,
      score: verification.score,
      agent,
      verification: verification.details,
      sandbox: slot.sandbox,
      ...(slot.image !== undefined ? { image: slot.image } : {}),
      slot: slot.slot,
      timings: {
        acquireMs: acquired - started,
        setupMs: setUp - acquired,
        agentMs: agentDone - setUp,
        verifyMs: finished - agentDone,
        totalMs: finished - started,
        modelMs: agent.turns.reduce((ms, t) => ms + t.latencyMs, 0),
      },
    };
  } catch (error) {
    broken = isRetryable(error);
    throw error;
  } finally {
    await slot.release({ broken }).catch((error: unknown) => log.warn({ err: error, trajectoryId }, "slot release failed"));
  }
}

/** An attempt that failed for infrastructure reasons and goes again on a fresh slot. */
class RetryOnAnotherSlot {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

/**
 * Runs `groupSize` trajectories of one item concurrently and returns its one scored group. `image`: the item's
 * sandbox image (image.ts), asked of every slot acquire (undefined: the pool's); the group's acquires share a
 * placement key, so its trajectories share a sandbox where its slots allow.
 */
export async function runGroup<Item>(item: Item, itemIndex: number, options: GroupOptions<Item>, image?: string): Promise<ScoredDataGroup> {
  const itemId = options.env.itemId(item);
  const started = performance.now();
  const placement = { image, group: randomUUID() };
  let retries = 0;
  const attemptTrajectory = async (): Promise<ScoredTrajectory> => {
    const trajectoryId = randomUUID();
    for (let attempt = 1; ; attempt++) {
      // Every event is sent while the trajectory holds its place under the gate, so "running" counts what runs.
      const run = async (): Promise<ScoredTrajectory | RetryOnAnotherSlot> => {
        options.onEvent?.({ type: "trajectory-start", itemId, trajectoryId, attempt });
        try {
          const scored = await runTrajectory(item, trajectoryId, attempt, options, placement);
          options.onEvent?.({ type: "trajectory-end", itemId, trajectoryId, score: scored.score });
          return scored;
        } catch (error) {
          const why = errorSummary(error);
          if (!options.signal?.aborted && isRetryable(error) && retries < options.backoffLimit) {
            retries++;
            options.onEvent?.({ type: "trajectory-retry", itemId, trajectoryId, attempt, error: why });
            return new RetryOnAnotherSlot(why);
          }
          options.onEvent?.({ type: "trajectory-failed", itemId, trajectoryId, attempt, error: why });
          if (options.signal?.aborted) throw error;
          const message = isRetryable(error) ? `item ${itemId}: gave up after ${retries} retries: ${why}` : `item ${itemId}: ${why}`;
          throw new GroupFailedError(itemId, attempt, message, { cause: error });
        }
      };
      const outcome = await (options.gate ? options.gate.use(run) : run());
      if (!(outcome instanceof RetryOnAnotherSlot)) return outcome;
      log.warn({ itemId, trajectoryId, attempt, err: outcome.reason }, "infrastructure failure, retrying on another slot");
    }
  };
  const results = await Promise.allSettled(Array.from({ length: options.groupSize }, attemptTrajectory));
  const failure = results.find((r) => r.status === "rejected");
  if (failure) throw failure.reason;
  return buildScoredGroup({
    itemId,
    itemIndex,
    environment: options.env.name,
    trajectories: results.map((r) => (r as PromiseFulfilledResult<ScoredTrajectory>).value),
    generation: options.generation,
    retries,
    durationMs: performance.now() - started,
  });
}

/** What a job spec fixes of every group it runs; callers add the environment, slots, model, gate and signal. */
export function groupSettingsFromSpec(
  spec: RolloutJobSpec,
): Pick<GroupOptions<unknown>, "format" | "generation" | "limits" | "groupSize" | "backoffLimit" | "imageTemplate"> {
  const { sampling } = spec.model;
  return {
    ...(spec.environment.image !== undefined ? { imageTemplate: spec.environment.image } : {}),
    format: spec.model.toolCallFormat,
    generation: { temperature: sampling.temperature, top_p: sampling.topP, max_tokens: sampling.maxTokens },
    limits: spec.limits,
    groupSize: spec.groupSize,
    backoffLimit: spec.backoffLimit,
  };
}
