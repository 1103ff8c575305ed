/** Dataset sources: where a job's rows come from. Rows are plain JSON objects; the environment parses them. */
import { DatasetError } from "../../base/errors.ts";

export type DatasetRow = Record<string, unknown>;

export interface DatasetSource {
  /** For logs, e.g. `jsonl:/data/items.jsonl`. */
  readonly description: string;
  /**
   * Streams the rows, never holding the whole dataset unless it is already in memory. With a seed, in a seeded
   * order: exact for in-memory sources, a bounded shuffle for streams (see order.ts).
   */
  rows(seed?: number): AsyncIterable<DatasetRow>;
}

export function asRow(value: unknown, where: string): DatasetRow {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new DatasetError(`${where}: a row must be a JSON object`);
  return value as DatasetRow;
}
