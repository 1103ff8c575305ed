import { getEnvironment } from "../envs/index.ts";
import { logger } from "../base/log.ts";
import { driveGroups } from "../rollout/driver.ts";
import { groupSettingsFromSpec, Semaphore, type GroupOptions } from "../rollout/group.ts";
import { tokenizerFromSpec, type HubSettings } from "../rollout/chat-tokenizer.ts";
import { TOKENIZER_CONFIGMAP_DIRECTORY } from "../rollout/tokenizer-mount.ts";
import { modelClientFromSpec } from "../rollout/model-from-spec.ts";
import type { OracleTask } from "../model-server/policy.ts";
import { startModelServer, type ModelServer } from "../model-server/server.ts";
import type { NextWork } from "../rollout/protocol.ts";
import { RunnersApiClient, renewIntervalMs } from "./client.ts";
import { GroupFailedError } from "../base/errors.ts";

const log = logger("runner");

type ItemWork = Extract<NextWork, { leaseId: string }>;

export interface RunnerOptions {
  apiURL: string;
  namespace: string;
  job: string;
  token: string;
  runnerId: string;
  modelApiKey?: string;
  /** Where a huggingFace tokenizer comes from (HF_ENDPOINT, HF_TOKEN). */
  hub?: HubSettings;
  signal: AbortSignal;
}

export interface RunnerSummary {
  groups: number;
  failed: number;
  handedBack: number;
  reason: "done" | "suspended" | "stopped";
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * A runner pod's work: take items from the runners' API, run each as one group on slots leased through the
 * API, post the scored group, renew the item's lease meanwhile. Ends when the job is done or suspended, or when
 * `signal` aborts (SIGTERM): then current items are handed back without spending an attempt.
 */
export async function runRunner(options: RunnerOptions): Promise<RunnerSummary> {
  const api = new RunnersApiClient({ url: options.apiURL, namespace: options.namespace, job: options.job, token: options.token });
  const info = await api.info();
  const { spec } = info;
  const env = getEnvironment(spec.environment.name, info.environmentConfig);
  const oracleTasks: OracleTask[] = [];
  let modelServer: ModelServer | undefined;
  const tokenizer = await tokenizerFromSpec(spec.model, {
    ...(options.hub ? { hub: options.hub } : {}),
    configMapDirectory: TOKENIZER_CONFIGMAP_DIRECTORY,
  });
  if (spec.model.builtin)
    modelServer = await startModelServer({
      policy: spec.model.builtin.policy,
      tasks: oracleTasks,
      model: spec.model.model,
      ...(tokenizer ? { tokenizer } : {}),
    });
  const model = modelClientFromSpec(spec.model, options.modelApiKey, modelServer?.baseURL, tokenizer);
  const groupOptions: GroupOptions<unknown> = {
    env,
    slots: api.slotProvider(),
    model,
    ...groupSettingsFromSpec(spec),
    gate: new Semaphore(spec.runners.trajectoriesPerRunner),
    signal: options.signal,
  };
  const summary: RunnerSummary = { groups: 0, failed: 0, handedBack: 0, reason: "stopped" };

  /** The next item the API hands this runner, waiting as it says; undefined once the job is done or suspended. */
  const take = async (): Promise<ItemWork | undefined> => {
    while (!options.signal.aborted) {
      const work = await api.next(options.runnerId);
      if ("done" in work || "suspended" in work) {
        summary.reason = "done" in work ? "done" : "suspended";
        return undefined;
      }
      if (!("waitMs" in work)) return work;
      await sleep(work.waitMs, options.signal);
    }
    return undefined;
  };

  try {
    // Every worker ends before the model server closes: a worker that gives up (API unreachable) never leaves
    // the others running against a closed model endpoint, failing every trajectory they start.
    await driveGroups({
      group: groupOptions,
      parallel: Math.ceil(spec.runners.trajectoriesPerRunner / spec.groupSize),
      take,
      oracleTasks,
      hold: (work) => {
        const renew = setInterval(() => {
          api.renew(work.leaseId).catch((error: unknown) => log.warn({ err: error, index: work.index }, "item lease renew failed"));
        }, renewIntervalMs(work.ttlMs));
        return () => clearInterval(renew);
      },
      deliver: async (group, work) => {
        await api.submitGroup(work.index, work.attempt, group.scores, group);
        summary.groups++;
        log.info({ index: work.index, attempt: work.attempt, scores: group.scores, done: summary.groups }, "group scored");
      },
      failed: async (work, error) => {
        summary.failed++;
        log.error({ index: work.index, err: error instanceof GroupFailedError ? error.message : error }, "item attempt failed");
        // Unreported, the item's lease lapses and the controller hands it out again: no reason to stop this worker.
        await api
          .fail(work.leaseId)
          .catch((failError: unknown) => log.warn({ err: failError, index: work.index }, "could not report the failed attempt"));
      },
      // Handed back without spending an attempt.
      interrupted: async (work) => {
        await api.handBack(work.leaseId).catch(() => undefined);
        summary.handedBack++;
      },
    });
  } finally {
    await modelServer?.close();
  }
  return summary;
}
