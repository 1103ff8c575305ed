/**
 * The job's dataset for an embedded run: rows as a stream, plus environment settings the source implies (the
 * bundled mini-dataset's file:// repo base). Relative JSONL paths resolve against the job file's directory.
 */
import { createReadStream } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { RolloutJobSpec } from "../api/index.ts";
import { defaultMiniDatasetDir, prepareMiniDataset } from "../envs/swe-smith-oracle/mini.ts";
import { startGitHttpServer } from "./git-http.ts";

export interface ResolvedDataset {
  rows: AsyncIterable<unknown>;
  environmentConfig: Record<string, unknown>;
  close(): Promise<void>;
}

async function* jsonlRows(path: string): AsyncIterable<unknown> {
  const lines = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Infinity });
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line.trim() === "") continue;
    try {
      yield JSON.parse(line);
    } catch (error) {
      throw new Error(`${path}:${number}: not JSON: ${(error as Error).message}`);
    }
  }
}

async function* take(rows: AsyncIterable<unknown>, max: number | undefined): AsyncIterable<unknown> {
  if (max === undefined) return yield* rows;
  let n = 0;
  for await (const row of rows) {
    if (n++ >= max) return;
    yield row;
  }
}

export async function resolveDataset(dataset: RolloutJobSpec["dataset"], jobPath: string): Promise<ResolvedDataset> {
  if (dataset.shuffleSeed !== undefined) throw new Error("spec.dataset.shuffleSeed is not supported by hermes-rollouts run yet");
  let rows: AsyncIterable<unknown>;
  let environmentConfig: Record<string, unknown> = {};
  let close = async (): Promise<void> => {};
  if (dataset.inline) {
    rows = (async function* () {
      yield* dataset.inline ?? [];
    })();
  } else if (dataset.jsonl?.path) {
    const path = isAbsolute(dataset.jsonl.path) ? dataset.jsonl.path : resolve(dirname(jobPath), dataset.jsonl.path);
    rows = jsonlRows(path);
  } else if (dataset.bundled === "swe-smith-mini") {
    const mini = await prepareMiniDataset(process.env.HERMES_MINI_DATASET_DIR ?? defaultMiniDatasetDir());
    rows = jsonlRows(mini.jsonlPath);
    // Isolated slots cannot read the host's file:// remotes: serve them over loopback HTTP instead.
    const git = await startGitHttpServer(new URL(mini.repoBaseURL).pathname);
    environmentConfig = { ...mini.environmentConfig, repoBaseURL: git.url };
    close = git.close;
  } else {
    throw new Error("this dataset source (jsonl.url, configMap, huggingFace) is not supported by hermes-rollouts run yet");
  }
  return { rows: take(rows, dataset.maxItems), environmentConfig, close };
}
