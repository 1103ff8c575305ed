import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { RolloutJob, RolloutJobSpec } from "../../api/index.ts";
import { DatasetError, errorMessage } from "../../base/errors.ts";
import { AtroposSink, tokenRestartHoldBack } from "../../rollout/sinks.ts";
import type { ClusterClient } from "../client.ts";
import type { ActiveJob, ActiveJobs } from "../runners-api/registry.ts";
import type { PoolRuntimes } from "../sandboxpool/runtimes.ts";
import type { WorkSnapshot } from "./decide.ts";
import { tokenSecretName, TOKEN_KEY, workLeaseTTLMs } from "./desired.ts";
import { ResultsForwarder } from "./forward.ts";
import { SpooledRows, type RowSource } from "./rows.ts";
import { imageHistogram, PREWARM_ROWS } from "../../rollout/image.ts";
import { prewarmImages } from "../../backends/slots/images.ts";
import { JobTracker } from "./tracker.ts";

/** A job's dataset could not be read; the job waits with a condition instead of failing the reconcile. */

/** Its rows are read once, when the job first starts; then its spool on disk is used. */
export interface LoadedDataset extends RowSource {
  environmentConfig: Record<string, unknown>;
}

export interface WorkDeps {
  client: Pick<ClusterClient, "readSecret">;
  runtimes: PoolRuntimes;
  active: ActiveJobs;
  loadDataset: (namespace: string, spec: RolloutJobSpec) => Promise<LoadedDataset>;
  /** Slot lease ids a job held before a restart (from the lease store), so its runners keep them. */
  restoredSlotLeases: (poolKey: string, jobKey: string) => Promise<string[]>;
  /** Enqueues the job again (scored groups arrived). */
  enqueue: (key: string) => void;
  dataDir: string;
  /** First retry delay of result forwarding to a trainer (tests shorten it). */
  forwardRetryDelayMs?: number;
}

/**
 * Loads a job's work into memory and registers it with the runners' API: its rows (spooled once), its tracker and,
 * for a trainer, its forwarder. The runner token comes from the job's Secret; `tokenStored` is false when there was
 * none and a new token still has to be stored.
 */
export async function loadWork(
  deps: WorkDeps,
  key: string,
  job: RolloutJob,
  spec: RolloutJobSpec,
): Promise<{ work: ActiveJob; tokenStored: boolean }> {
  const namespace = job.metadata.namespace ?? "default";
  const poolKey = `${namespace}/${spec.poolRef.name}`;
  // Keyed by uid: a job re-created under the same name starts afresh instead of inheriting the old one's results.
  const dir = join(deps.dataDir, namespace, job.metadata.name, job.metadata.uid ?? "");
  let dataset: LoadedDataset;
  let rows: SpooledRows;
  try {
    dataset = await deps.loadDataset(namespace, spec);
    rows = await SpooledRows.open(join(dir, "rows.jsonl"), () => dataset);
  } catch (error) {
    throw new DatasetError(`dataset could not be loaded: ${errorMessage(error)}`, { cause: error });
  }
  const stored = (await deps.client.readSecret(namespace, tokenSecretName(job)))?.[TOKEN_KEY];
  const heldBack = tokenRestartHoldBack(spec.results);
  const tracker = new JobTracker({
    resultsPath: spec.results.type === "file" && spec.results.path ? spec.results.path : join(dir, "results.jsonl"),
    journalPath: join(dir, "journal.jsonl"),
    ...(job.metadata.uid ? { jobUid: job.metadata.uid } : {}),
    items: rows.count,
    filtered: rows.filtered,
    backoffLimit: spec.backoffLimit,
    leaseTTLMs: workLeaseTTLMs(spec.limits),
    ...(heldBack ? { isHeldBack: heldBack } : {}),
  });
  const retryDelay = deps.forwardRetryDelayMs ? { retryDelayMs: deps.forwardRetryDelayMs } : {};
  const forwarder =
    spec.results.type === "atropos" && spec.results.url
      ? await ResultsForwarder.open({
          sink: new AtroposSink({
            url: spec.results.url,
            name: job.metadata.name,
            groupSize: spec.groupSize,
            maxTokenLength: spec.limits.maxTokenLength,
            dropUniformGroups: spec.results.dropUniformGroups,
            holdBackTokenRestarts: spec.results.holdBackTokenRestarts,
            ...retryDelay,
          }),
          resultsPath: tracker.resultsPath,
          forwardedPath: join(dir, "forwarded"),
          ...retryDelay,
          onChange: () => deps.enqueue(key),
        })
      : undefined;
  forwarder?.start();
  const work: ActiveJob = {
    key,
    uid: job.metadata.uid ?? "",
    poolKey,
    token: stored || randomBytes(24).toString("hex"),
    spec,
    rows,
    environmentConfig: dataset.environmentConfig,
    tracker,
    forwarder,
    suspended: spec.suspend,
    poolGone: false,
    slotLeases: new Set(await deps.restoredSlotLeases(poolKey, key)),
    onProgress: () => deps.enqueue(key),
  };
  deps.active.set(work);
  await prewarmPool(deps.runtimes, poolKey, rows, spec);
  return { work, tokenStored: Boolean(stored) };
}

/**
 * Warms the images the job needs most in its pool, from the image histogram of its first rows, when the pool runs in
 * this controller (else its runners' acquires bring the images in), and has the pool reconcile at once.
 */
export async function prewarmPool(
  runtimes: Pick<PoolRuntimes, "get" | "onWaiting">,
  poolKey: string,
  rows: SpooledRows,
  spec: RolloutJobSpec,
): Promise<void> {
  const runtime = runtimes.get(poolKey);
  if (runtime === undefined) return;
  const head = await Promise.all(Array.from({ length: Math.min(rows.count, PREWARM_ROWS) }, (_, index) => rows.row(index)));
  const caps = { ...runtime.warmCaps, slotsPerSandbox: runtime.slots.template.slots, groupSize: spec.groupSize };
  const warm = prewarmImages(imageHistogram(spec.environment.image, head), caps);
  if (warm.size === 0) return;
  runtime.slots.images.prewarm(warm);
  runtimes.onWaiting(poolKey);
}

/** The runners' API forgets a job; its forwarder stops (what it has not sent stays in the JSONL). */
export function retireWork(active: ActiveJobs, key: string): void {
  const gone = active.delete(key);
  void gone?.forwarder?.close();
  void gone?.rows.close();
}

/** Hands a job's items back (no attempt spent) and releases the slot leases its runners held. */
export async function releaseWork(work: ActiveJob, runtimes: PoolRuntimes): Promise<void> {
  await work.tracker.handBackAll();
  const pool = runtimes.get(work.poolKey);
  for (const leaseId of work.slotLeases) await pool?.slots.release(leaseId);
  work.slotLeases.clear();
}

/** What decide needs of a job's work in memory, as plain data. */
export function snapshotWork(work: ActiveJob): WorkSnapshot {
  const forwarder = work.forwarder;
  return {
    aggregates: work.tracker.aggregates(),
    finished: work.tracker.finished,
    forwarding: forwarder && { pending: forwarder.pending, location: forwarder.location, lastError: forwarder.lastError },
    resultsLocation: forwarder?.location ?? work.tracker.resultsPath,
    poolGone: work.poolGone,
  };
}
