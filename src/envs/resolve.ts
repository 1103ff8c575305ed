/**
 * The job's dataset for a runner on one machine: the envs loaders (inline, JSONL path or URL, Hugging Face,
 * ConfigMap in a cluster, bundled) with the job's seeded order and `maxItems`, plus what one machine adds:
 * relative JSONL paths resolve against the job file's directory, and a `file://` repo base the dataset implies
 * (the bundled mini-dataset) is served over loopback git HTTP, since isolated slots cannot read the host's files.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { RolloutJobSpec } from "../api/index.ts";
import { openDataset, readRows, type DatasetContext, type DatasetRow, type DatasetSpec } from "./datasets/index.ts";
import { startGitHttpServer } from "./git-http.ts";

export interface ResolveOptions extends DatasetContext {
  /** Serves a directory of bare repositories and returns its base URL. The caller owns the server (the controller
   * shares one across jobs); without it a loopback server is started and closed with the dataset. */
  serveRepos?: (root: string) => Promise<string>;
  /** The environment's row filter (`rowFilter`). */
  keep?: (row: DatasetRow) => boolean;
}

export interface ResolvedDataset {
  rows: AsyncIterable<DatasetRow>;
  environmentConfig: Record<string, unknown>;
  close(): Promise<void>;
}

/** Pure: the spec with a relative `jsonl.path` made absolute against the job file's directory. */
export function anchorDatasetSpec(dataset: DatasetSpec, jobPath: string): DatasetSpec {
  const path = dataset.jsonl?.path;
  if (path === undefined || isAbsolute(path)) return dataset;
  return { ...dataset, jsonl: { ...dataset.jsonl, path: resolve(dirname(jobPath), path) } };
}

export async function resolveDataset(
  dataset: RolloutJobSpec["dataset"],
  jobPath: string,
  options: ResolveOptions = {},
): Promise<ResolvedDataset> {
  const { serveRepos, keep, ...context } = options;
  const opened = await openDataset(anchorDatasetSpec(dataset, jobPath), context);
  const rows = readRows(opened.source, {
    ...(dataset.maxItems !== undefined ? { maxItems: dataset.maxItems } : {}),
    ...(dataset.shuffleSeed !== undefined ? { shuffleSeed: dataset.shuffleSeed } : {}),
    ...(keep ? { keep } : {}),
  });
  const repoBase = opened.environmentConfig.repoBaseURL;
  if (typeof repoBase !== "string" || !repoBase.startsWith("file://")) {
    return { rows, environmentConfig: opened.environmentConfig, close: async () => {} };
  }
  const root = fileURLToPath(repoBase);
  if (serveRepos)
    return { rows, environmentConfig: { ...opened.environmentConfig, repoBaseURL: await serveRepos(root) }, close: async () => {} };
  const git = await startGitHttpServer(root);
  return { rows, environmentConfig: { ...opened.environmentConfig, repoBaseURL: git.url }, close: git.close };
}
