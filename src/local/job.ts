/**
 * `hermes-rollouts run`: one RolloutJob on this machine. Items stream from the dataset; each becomes one group
 * of `groupSize` trajectories on the embedded pool, with at most `concurrency` trajectories at once; groups go
 * to DIR/scored.jsonl (and to a trainer when the job says atropos); DIR/summary.json sums the run up.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { RolloutJobSpec } from "../api/index.ts";
import { getEnvironment, rowFilter, type Environment } from "../envs/index.ts";
import { logger } from "../base/log.ts";
import { startEmbeddedPool, type EmbeddedPool, type EmbeddedPoolEnvironment } from "./pool.ts";
import type { DatasetSettings } from "../envs/datasets/index.ts";
import { resolveDataset } from "../envs/resolve.ts";
import { driveGroups, readAhead, streamWork } from "../rollout/driver.ts";
import { imageHistogram, PREWARM_ROWS } from "../rollout/image.ts";
import { prewarmImages } from "../backends/slots/images.ts";
import { groupSettingsFromSpec, Semaphore, type GroupOptions } from "../rollout/group.ts";
import { loadManifests } from "./manifest.ts";
import { tokenizerFromSpec } from "../rollout/chat-tokenizer.ts";
import { modelClientFromSpec } from "../rollout/model-from-spec.ts";
import type { OracleTask } from "../model-server/policy.ts";
import { startModelServer, type ModelServer } from "../model-server/server.ts";
import { ProgressCounters, progressView } from "./progress.ts";
import type { ScoredDataGroup } from "../rollout/scored.ts";
import { AtroposSink, JsonlSink, tokenRestartHoldBack, type ScoredSink } from "../rollout/sinks.ts";
import { errorMessage, GroupFailedError, InvalidItemError, ManifestError } from "../base/errors.ts";

const log = logger("run");

export interface RunOptions {
  jobPath: string;
  poolPath?: string;
  outDir: string;
  /** Trajectories at once; replicas × trajectoriesPerRunner of the job when unset. */
  concurrency?: number;
  stream?: NodeJS.WriteStream;
  signal?: AbortSignal;
  environment?: RunEnvironment;
}

/** What `run` takes from the process environment, read once by the CLI. */
export interface RunEnvironment {
  /** The model endpoint's key when the job names apiKeySecretRef (a cluster Secret, unreadable here). */
  modelApiKey?: string;
  datasets?: DatasetSettings;
  pool?: EmbeddedPoolEnvironment;
}

export interface RunSummary {
  job: string;
  pool: string;
  backend: string;
  environment: string;
  model: string;
  items: number;
  /** Dataset rows the environment left out (rows no test profile can run), not among `items`. */
  filtered: number;
  groups: number;
  /** Groups kept in scored.jsonl but not sent to the trainer for token restarts (results.holdBackTokenRestarts). */
  heldBack: number;
  failed: number;
  trajectories: number;
  passed: number;
  passRate: number;
  meanScore: number;
  retries: number;
  durationSeconds: number;
  /** Mean per-trajectory phase times, in ms. */
  perTrajectoryMs: { acquire: number; setup: number; agent: number; model: number; verify: number; total: number };
  results: string[];
  failures: { item: string; error: string }[];
  succeeded: boolean;
}

const FAILURES_KEPT = 20;

function openSinks(spec: RolloutJobSpec, jobName: string, outDir: string): ScoredSink[] {
  const sinks: ScoredSink[] = [new JsonlSink(join(outDir, "scored.jsonl"))];
  if (spec.results.type === "atropos" && spec.results.url) {
    sinks.push(
      new AtroposSink({
        url: spec.results.url,
        name: jobName,
        groupSize: spec.groupSize,
        maxTokenLength: spec.limits.maxTokenLength,
        dropUniformGroups: spec.results.dropUniformGroups,
        holdBackTokenRestarts: spec.results.holdBackTokenRestarts,
      }),
    );
  }
  return sinks;
}

function apiKey(spec: RolloutJobSpec, environment: RunEnvironment): string | undefined {
  // In a cluster the key comes from apiKeySecretRef; on one machine from the environment.
  return spec.model.apiKeySecretRef ? environment.modelApiKey : undefined;
}

export async function runJob(options: RunOptions): Promise<RunSummary> {
  const jobText = await readFile(options.jobPath, "utf8");
  const poolText = options.poolPath ? await readFile(options.poolPath, "utf8") : undefined;
  const { job, pool } = loadManifests(
    { text: jobText, source: options.jobPath },
    poolText !== undefined && options.poolPath ? { text: poolText, source: options.poolPath } : undefined,
  );
  const spec = job.spec;
  const configMap = spec.model.tokenizer?.configMap;
  if (configMap)
    throw new ManifestError(
      `${options.jobPath}: spec.model.tokenizer.configMap: ConfigMap ${configMap.name} is mounted into runner pods by the ` +
        "operator, and hermes-rollouts run has no cluster: put its tokenizer.json and tokenizer_config.json in a directory " +
        "and use spec.model.tokenizer.path",
    );
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, "scored.jsonl"), "");

  const filter = inJobFile(options.jobPath, () => rowFilter(spec.environment.name, spec.environment.config));
  const environment = options.environment ?? {};
  const dataset = await resolveDataset(spec.dataset, options.jobPath, {
    ...environment.datasets,
    ...(filter ? { keep: filter.keep } : {}),
    ...(spec.environment.config ? { environmentConfig: spec.environment.config } : {}),
  });
  const cleanups: (() => Promise<void>)[] = [() => dataset.close()];
  const oracleTasks: OracleTask[] = [];
  const counters = new ProgressCounters();
  const failures: RunSummary["failures"] = [];
  const groups: ScoredDataGroup[] = [];
  let modelServer: ModelServer | undefined;
  const tokenizer = await tokenizerFromSpec(spec.model, {
    hub: {
      ...(environment.datasets?.hfEndpoint ? { endpoint: environment.datasets.hfEndpoint } : {}),
      ...(environment.datasets?.hfToken ? { token: environment.datasets.hfToken } : {}),
    },
  });
  let embedded: EmbeddedPool | undefined;
  try {
    // The dataset's own settings (the bundled one's repo base) are only known now, with the dataset open.
    const env: Environment = inJobFile(options.jobPath, () => getEnvironment(spec.environment.name, dataset.environmentConfig));
    if (spec.model.builtin) {
      modelServer = await startModelServer({
        policy: spec.model.builtin.policy,
        tasks: oracleTasks,
        model: spec.model.model,
        ...(tokenizer ? { tokenizer } : {}),
      });
      cleanups.push(() => (modelServer as ModelServer).close());
    }
    embedded = await startEmbeddedPool(pool.name, pool.spec, environment.pool);
    cleanups.push(() => (embedded as EmbeddedPool).close());
    const sinks = openSinks(spec, job.name, outDir);
    for (const sink of sinks) await sink.open();
    cleanups.push(async () => void (await Promise.allSettled(sinks.map((s) => s.close()))));

    const concurrency = options.concurrency ?? spec.runners.replicas * spec.runners.trajectoriesPerRunner;
    const model = modelClientFromSpec(spec.model, apiKey(spec, environment), modelServer?.baseURL, tokenizer);
    const view = progressView(counters, options.stream);
    const groupOptions: GroupOptions<unknown> = {
      env,
      slots: embedded.slots,
      model,
      ...groupSettingsFromSpec(spec),
      gate: new Semaphore(concurrency),
      ...(options.signal ? { signal: options.signal } : {}),
      onEvent: (event) => {
        counters.onEvent(event);
        view.update();
      },
    };

    // The job's image histogram over the first rows warms the images most needed before their first acquire.
    const { head, rows } = await readAhead(dataset.rows, PREWARM_ROWS);
    const { maxSandboxes, slotsPerSandbox, minSandboxesPerImage: minPerImage } = pool.spec;
    const caps = { maxSandboxes, slotsPerSandbox, minPerImage, groupSize: spec.groupSize };
    embedded.slotPool.images.prewarm(prewarmImages(imageHistogram(spec.environment.image, head), caps));
    const stream = streamWork(rows);
    try {
      // Enough groups in flight to keep the trajectory gate full, pulled lazily from the dataset stream.
      await driveGroups({
        group: groupOptions,
        parallel: Math.ceil(concurrency / spec.groupSize) + 1,
        take: async () => {
          const work = await stream.take();
          counters.filtered = filter?.filtered ?? 0;
          if (work === undefined) counters.total = counters.items;
          else counters.items = work.index + 1;
          return work;
        },
        oracleTasks,
        deliver: async (group) => {
          for (const sink of sinks) await sink.write(group);
          groups.push(group);
          counters.onGroup(group);
          view.itemFinished(`${group.metadata.item_id}: scores [${group.scores.join(", ")}]`);
        },
        failed: (_work, error, itemId) => {
          counters.failed++;
          const message = error instanceof GroupFailedError || error instanceof InvalidItemError ? error.message : String(error);
          if (failures.length < FAILURES_KEPT) failures.push({ item: itemId, error: message });
          log.error({ item: itemId, err: message }, "item failed");
          view.itemFinished(`${itemId}: FAILED ${message.slice(0, 200)}`);
        },
      });
      options.signal?.throwIfAborted();
    } finally {
      // However the run ended (an interrupt, a dataset failing mid-stream), its groups have ended (the signal stops
      // them) before the pool and model server close under them. The live bar's timer would keep the process alive
      // and the terminal's cursor hidden.
      view.stop();
      await stream.close();
    }
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => log.warn({ err: error }, "cleanup failed"));
    }
  }

  const summary = summarize(job.name, pool.name, pool.spec.backend, spec.environment.name, spec, counters, groups, failures, outDir);
  await writeFile(join(outDir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

/** Environment errors are the job file's: say which file and field. */
function inJobFile<T>(jobPath: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw new ManifestError(`${jobPath}: spec.environment: ${errorMessage(error)}`);
  }
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : Math.round(values.reduce((a, b) => a + b, 0) / values.length);
}

function summarize(
  jobName: string,
  poolName: string,
  backend: string,
  environment: string,
  spec: RolloutJobSpec,
  counters: ProgressCounters,
  groups: readonly ScoredDataGroup[],
  failures: RunSummary["failures"],
  outDir: string,
): RunSummary {
  const heldBack = tokenRestartHoldBack(spec.results);
  const timings = groups.flatMap((g) => g.metadata.trajectories.map((t) => t.timings));
  const results = [join(outDir, "scored.jsonl"), ...(spec.results.type === "atropos" && spec.results.url ? [spec.results.url] : [])];
  return {
    job: jobName,
    pool: poolName,
    backend,
    environment,
    model: spec.model.builtin ? `builtin:${spec.model.builtin.policy}` : (spec.model.baseURL ?? ""),
    items: counters.items,
    filtered: counters.filtered,
    groups: counters.groups,
    heldBack: heldBack ? groups.filter(heldBack).length : 0,
    failed: counters.failed,
    trajectories: counters.trajectories,
    passed: counters.passed,
    passRate: counters.passRate,
    meanScore: counters.meanScore,
    retries: counters.retries,
    durationSeconds: Math.round(counters.elapsedSeconds * 100) / 100,
    perTrajectoryMs: {
      acquire: mean(timings.map((t) => t.acquireMs)),
      setup: mean(timings.map((t) => t.setupMs)),
      agent: mean(timings.map((t) => t.agentMs)),
      model: mean(timings.map((t) => t.modelMs)),
      verify: mean(timings.map((t) => t.verifyMs)),
      total: mean(timings.map((t) => t.totalMs)),
    },
    results,
    failures,
    succeeded: counters.failed === 0 && counters.groups > 0,
  };
}
