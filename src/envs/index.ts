/** The environment registry: the runner names an environment and passes the job's free-form config. */
import { z } from "zod";
import type { Environment, EnvironmentFactory } from "./types.ts";
import { shellTaskFactory } from "./shell-task.ts";
import { sweSmithOracleFactory } from "./swe-smith-oracle/env.ts";

export * from "./types.ts";

// Each factory is typed by its own config and item; the registry only hands configs through their schema.
const factories: readonly EnvironmentFactory<any, any>[] = [sweSmithOracleFactory, shellTaskFactory];

export const environmentNames: readonly string[] = factories.map((f) => f.name);

/** A configured environment; an unknown name or a config its schema rejects is a configuration error. */
export function getEnvironment(name: string, config: Record<string, unknown> = {}): Environment {
  const factory = factories.find((f) => f.name === name);
  if (!factory) throw new Error(`unknown environment "${name}" (known: ${environmentNames.join(", ")})`);
  const parsed = factory.configSchema.safeParse(config);
  if (!parsed.success) throw new Error(`invalid config for environment "${name}": ${z.prettifyError(parsed.error)}`);
  return factory.fromConfig(parsed.data);
}

/** An environment's row filter, counting the rows it leaves out: status and the run summary report them. */
export interface RowFilter {
  keep: (row: unknown) => boolean;
  /** Rows refused so far (the dataset is read lazily, so this grows as it is read). */
  readonly filtered: number;
}

/** The environment's row filter for a job, from the job's own environment config (dataset defaults cannot change it). */
export function rowFilter(name: string, config: Record<string, unknown> = {}): RowFilter | undefined {
  const env = getEnvironment(name, config);
  if (!env.keepsRow) return undefined;
  const filter = {
    filtered: 0,
    keep: (row: unknown): boolean => {
      const kept = env.keepsRow!(row);
      if (!kept) filter.filtered++;
      return kept;
    },
  };
  return filter;
}

export { openDataset, readRows, type DatasetContext, type DatasetSpec, type OpenedDataset } from "./datasets/index.ts";
export { defaultMiniDatasetDir, MINI_DATASET_NAME, prepareMiniDataset, type MiniDataset } from "./swe-smith-oracle/mini.ts";
