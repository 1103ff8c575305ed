/**
 * A Hugging Face Hub dataset read from its parquet files: the Hub's listing
 * `GET <endpoint>/api/datasets/<name>/parquet/<config>/<split>` (a JSON array of file URLs), then each file read
 * with hyparquet through HTTP range requests, one row group at a time (only the footer and the current row group
 * are fetched and held). With a seed, files and row groups are visited in a seeded order and a bounded shuffle
 * buffer mixes rows across them (order.ts). The endpoint defaults to https://huggingface.co; a token, when given, is
 * sent as a bearer token (the CLI passes HF_ENDPOINT and HF_TOKEN).
 */
import { permute, seededRandom, shuffleBuffer } from "./order.ts";
import { STREAM_SHUFFLE_BUFFER } from "./jsonl.ts";
import type { DatasetRow, DatasetSource } from "./types.ts";
import { DatasetError } from "../../base/errors.ts";

export interface HuggingFaceOptions {
  name: string;
  split: string;
  config: string;
  endpoint?: string;
  token?: string;
  fetch?: typeof fetch;
  shuffleBufferSize?: number;
}

export function parquetListingURL(endpoint: string, name: string, config: string, split: string): string {
  const base = endpoint.replace(/\/+$/, "");
  return `${base}/api/datasets/${name}/parquet/${encodeURIComponent(config)}/${encodeURIComponent(split)}`;
}

/** Parquet values as JSON-safe row fields: int64 → number (string past 2^53), dates → ISO strings, bytes → base64. */
export function plainValue(value: unknown): unknown {
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (Array.isArray(value)) return value.map(plainValue);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainValue(v)]));
  return value;
}

/** [start, end) row ranges of the row groups, from the footer's row counts. */
export function rowGroupRanges(rowCounts: readonly (number | bigint)[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let start = 0;
  for (const count of rowCounts) {
    ranges.push([start, start + Number(count)]);
    start += Number(count);
  }
  return ranges;
}

export function huggingFaceSource(options: HuggingFaceOptions): DatasetSource {
  const endpoint = options.endpoint ?? "https://huggingface.co";
  const token = options.token;
  const doFetch = options.fetch ?? fetch;
  const requestInit: RequestInit | undefined = token ? { headers: { authorization: `Bearer ${token}` } } : undefined;
  const description = `huggingface:${options.name}/${options.config}/${options.split}`;

  async function listFiles(): Promise<string[]> {
    const url = parquetListingURL(endpoint, options.name, options.config, options.split);
    const response = await doFetch(url, requestInit);
    if (!response.ok) throw new DatasetError(`${description}: GET ${url}: HTTP ${response.status}`);
    const body: unknown = await response.json();
    if (!Array.isArray(body) || !body.every((u) => typeof u === "string"))
      throw new DatasetError(`${description}: the parquet listing is not a list of URLs`);
    if (body.length === 0) throw new DatasetError(`${description}: no parquet files for this config and split`);
    return body;
  }

  async function* readFiles(seed: number | undefined): AsyncGenerator<DatasetRow> {
    const random = seed === undefined ? undefined : seededRandom(seed);
    const reorder = <T>(values: T[]): T[] => (random ? permute(values, Math.floor(random() * 4294967296)) : values);
    // Loaded by the first job that reads a Hugging Face dataset: a controller that never does need not carry it.
    const { asyncBufferFromUrl, parquetMetadataAsync, parquetReadObjects } = await import("hyparquet");
    for (const url of reorder(await listFiles())) {
      const file = await asyncBufferFromUrl({ url, requestInit, fetch: doFetch });
      const metadata = await parquetMetadataAsync(file);
      for (const [rowStart, rowEnd] of reorder(rowGroupRanges(metadata.row_groups.map((g) => g.num_rows)))) {
        const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd });
        for (const row of rows) yield plainValue(row) as DatasetRow;
      }
    }
  }

  return {
    description,
    rows(seed) {
      const rows = readFiles(seed);
      return seed === undefined ? rows : shuffleBuffer(rows, seed, options.shuffleBufferSize ?? STREAM_SHUFFLE_BUFFER);
    },
  };
}
