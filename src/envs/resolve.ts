/**
 * The job's dataset for a runner on one machine: the envs loaders (inline, JSONL path or URL, Hugging Face,
 * ConfigMap in a cluster, bundled) with the job's seeded order and `maxItems`, plus what one machine adds:
 * relative JSONL paths resolve against the job file's directory, and repositories given as local paths (`file://`
 * in `repoBaseURL` or `repoMirrors`, the job's or the bundled dataset's) are served over git HTTP, since isolated
 * slots cannot read the host's files.
 */
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { RolloutJobSpec } from "../api/index.ts";
import { openDataset, readRows, type DatasetContext, type DatasetRow, type DatasetSpec } from "./datasets/index.ts";
import { startGitHttpServer, type GitHttpServer } from "./git-http.ts";

export interface ResolveOptions extends DatasetContext {
  /** Serves a directory of bare repositories and returns its base URL. The caller owns the server (the controller
   * shares one across jobs); without it a loopback server is started and closed with the dataset. */
  serveRepos?: (root: string) => Promise<string>;
  /** The environment's row filter (`rowFilter`). */
  keep?: (row: DatasetRow) => boolean;
  /** The job's own environment config; it wins over the dataset's defaults. */
  environmentConfig?: Record<string, unknown>;
}

export interface ResolvedDataset {
  rows: AsyncIterable<DatasetRow>;
  /** The environment config to run with: the dataset's defaults, the job's over them, local repositories served. */
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
  const { serveRepos, keep, environmentConfig, ...context } = options;
  const opened = await openDataset(anchorDatasetSpec(dataset, jobPath), context);
  const rows = readRows(opened.source, {
    ...(dataset.maxItems !== undefined ? { maxItems: dataset.maxItems } : {}),
    ...(dataset.shuffleSeed !== undefined ? { shuffleSeed: dataset.shuffleSeed } : {}),
    ...(keep ? { keep } : {}),
  });
  const config = { ...opened.environmentConfig, ...environmentConfig };
  if (serveRepos) return { rows, environmentConfig: await serveLocalRepositories(config, serveRepos), close: async () => {} };
  const servers = new Map<string, Promise<GitHttpServer>>();
  const serve = async (root: string) => {
    if (!servers.has(root)) servers.set(root, startGitHttpServer(root));
    return (await servers.get(root)!).url;
  };
  const close = async () => void (await Promise.all([...servers.values()].map(async (server) => (await server).close())));
  try {
    return { rows, environmentConfig: await serveLocalRepositories(config, serve), close };
  } catch (error) {
    await close();
    throw error;
  }
}

const isLocal = (url: unknown): url is string => typeof url === "string" && url.startsWith("file://");

/**
 * The environment config with each local repository source replaced by a git HTTP URL `serve` makes for its
 * directory: `repoBaseURL` (a directory of `<owner>/<name>.git`) and each `repoMirrors` value (one repository,
 * served from its parent directory). Others are left as they are.
 */
export async function serveLocalRepositories(
  config: Record<string, unknown>,
  serve: (root: string) => Promise<string>,
): Promise<Record<string, unknown>> {
  const served = { ...config };
  if (isLocal(config.repoBaseURL)) served.repoBaseURL = await serve(fileURLToPath(config.repoBaseURL));
  const mirrors = config.repoMirrors;
  if (typeof mirrors === "object" && mirrors !== null && Object.values(mirrors).some(isLocal)) {
    const entries = Object.entries(mirrors).map(async ([repo, url]) => {
      if (!isLocal(url)) return [repo, url];
      const path = fileURLToPath(url);
      return [repo, `${await serve(dirname(path))}${encodeURIComponent(basename(path))}`];
    });
    served.repoMirrors = Object.fromEntries(await Promise.all(entries));
  }
  return served;
}
