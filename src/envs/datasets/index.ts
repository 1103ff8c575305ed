/**
 * Dataset loaders behind one entry point: a RolloutJob's `dataset` spec → a source of rows, plus any environment
 * settings the source implies (the bundled mini-dataset's file:// repo base). `readRows` applies the seeded order
 * and then `maxItems` (the original applies max_items after shuffling).
 */
import type { CoreV1Api } from "@kubernetes/client-node";
import type { RolloutJobSpec } from "../../api/rolloutjob.ts";
import { defaultMiniDatasetDir, MINI_DATASET_NAME, prepareMiniDataset } from "../swe-smith-oracle/mini.ts";
import { readConfigMapSource } from "./configmap.ts";
import { huggingFaceSource } from "./huggingface.ts";
import { jsonlFileSource, jsonlUrlSource, memorySource } from "./jsonl.ts";
import { filter, take } from "./order.ts";
import { asRow, type DatasetRow, type DatasetSource } from "./types.ts";
import { DatasetError } from "../../base/errors.ts";

export * from "./types.ts";
export { configMapSource } from "./configmap.ts";
export { huggingFaceSource } from "./huggingface.ts";
export { jsonlFileSource, jsonlUrlSource, memorySource, parseJsonl } from "./jsonl.ts";
export { permute, shuffleBuffer, take } from "./order.ts";

export type DatasetSpec = RolloutJobSpec["dataset"];

export interface DatasetContext {
  /** Needed for `configMap` sources (in a cluster). */
  kube?: { api: CoreV1Api; namespace: string };
  /** Where bundled datasets are generated; defaultMiniDatasetDir() when unset. */
  bundledDir?: string;
  fetch?: typeof fetch;
  /** Hub endpoint (HF_ENDPOINT); https://huggingface.co when unset. */
  hfEndpoint?: string;
  /** Hub bearer token (HF_TOKEN), for gated and private datasets. */
  hfToken?: string;
}

/** The part of the context a role takes from its environment, read once by the CLI. */
export type DatasetSettings = Pick<DatasetContext, "bundledDir" | "hfEndpoint" | "hfToken">;

export interface OpenedDataset {
  source: DatasetSource;
  /** Defaults for the environment's config that this dataset needs; the job's own config wins over them. */
  environmentConfig: Record<string, unknown>;
}

export const bundledDatasetNames = [MINI_DATASET_NAME] as const;

export async function openDataset(spec: DatasetSpec, context: DatasetContext = {}): Promise<OpenedDataset> {
  const plain = (source: DatasetSource): OpenedDataset => ({ source, environmentConfig: {} });
  if (spec.inline)
    return plain(
      memorySource(
        "inline",
        spec.inline.map((row, i) => asRow(row, `inline[${i}]`)),
      ),
    );
  if (spec.jsonl?.path) return plain(jsonlFileSource(spec.jsonl.path));
  if (spec.jsonl?.url) return plain(jsonlUrlSource(spec.jsonl.url, { fetch: context.fetch }));
  if (spec.configMap) {
    if (!context.kube) throw new DatasetError("a configMap dataset needs a Kubernetes client (it only works in a cluster)");
    return plain(await readConfigMapSource(context.kube.api, context.kube.namespace, spec.configMap.name, spec.configMap.key));
  }
  if (spec.huggingFace) {
    if (spec.huggingFace.revision)
      throw new DatasetError("huggingFace.revision is not supported: the Hub's parquet listing serves the converted main branch");
    return plain(huggingFaceSource({ ...spec.huggingFace, endpoint: context.hfEndpoint, token: context.hfToken, fetch: context.fetch }));
  }
  if (spec.bundled === MINI_DATASET_NAME) {
    const mini = await prepareMiniDataset(context.bundledDir ?? defaultMiniDatasetDir());
    return { source: jsonlFileSource(mini.jsonlPath), environmentConfig: mini.environmentConfig };
  }
  throw new DatasetError("the dataset names no source");
}

export interface RowOrder {
  maxItems?: number;
  shuffleSeed?: number;
  /** Rows the environment can work on (SWE-smith's python_only); the rest are left out before `maxItems`. */
  keep?: (row: DatasetRow) => boolean;
}

/** The rows a job works on: seeded order (when `shuffleSeed` is set), the environment's filter, then at most `maxItems`. */
export function readRows(source: DatasetSource, options: RowOrder = {}): AsyncGenerator<DatasetRow> {
  const rows = source.rows(options.shuffleSeed);
  return take(options.keep ? filter(rows, options.keep) : rows, options.maxItems);
}
