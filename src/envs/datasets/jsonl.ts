/** JSONL sources: a file, an http(s) URL, or text already in memory (a ConfigMap value), read line by line. */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { createInterface } from "node:readline";
import { permute, shuffleBuffer } from "./order.ts";
import { asRow, type DatasetRow, type DatasetSource } from "./types.ts";
import { DatasetError } from "../../base/errors.ts";

export const STREAM_SHUFFLE_BUFFER = 1000;

/** Parses JSONL text: blank lines are skipped; a bad line names its number. */
export function parseJsonl(text: string, where: string): DatasetRow[] {
  const rows: DatasetRow[] = [];
  for (const [index, line] of text.split("\n").entries()) {
    if (line.trim() !== "") rows.push(parseLine(line, `${where}:${index + 1}`));
  }
  return rows;
}

const BYTE_ORDER_MARK = "\uFEFF";

function parseLine(line: string, where: string): DatasetRow {
  try {
    // Files saved by Windows tools start with a UTF-8 BOM, which JSON.parse rejects and no decoder here strips.
    return asRow(JSON.parse(line.startsWith(BYTE_ORDER_MARK) ? line.slice(1) : line), where);
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    throw new DatasetError(`${where}: not valid JSON`, { cause: error });
  }
}

async function* jsonlLines(input: Readable, where: string): AsyncGenerator<DatasetRow> {
  let number = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    number++;
    if (line.trim() !== "") yield parseLine(line, `${where}:${number}`);
  }
}

function streamSource(description: string, open: () => Promise<Readable>, shuffleBufferSize: number): DatasetSource {
  return {
    description,
    rows(seed) {
      const rows = (async function* () {
        yield* jsonlLines(await open(), description);
      })();
      return seed === undefined ? rows : shuffleBuffer(rows, seed, shuffleBufferSize);
    },
  };
}

export function jsonlFileSource(path: string, shuffleBufferSize = STREAM_SHUFFLE_BUFFER): DatasetSource {
  return streamSource(`jsonl:${path}`, async () => createReadStream(path, "utf8"), shuffleBufferSize);
}

export function jsonlUrlSource(url: string, options: { fetch?: typeof fetch; shuffleBufferSize?: number } = {}): DatasetSource {
  const doFetch = options.fetch ?? fetch;
  return streamSource(
    `jsonl:${url}`,
    async () => {
      const response = await doFetch(url);
      if (!response.ok || !response.body) throw new DatasetError(`GET ${url}: HTTP ${response.status}`);
      return Readable.fromWeb(response.body);
    },
    options.shuffleBufferSize ?? STREAM_SHUFFLE_BUFFER,
  );
}

/** Rows already in memory (inline items, a ConfigMap value): shuffled exactly. */
export function memorySource(description: string, rows: readonly DatasetRow[]): DatasetSource {
  return {
    description,
    async *rows(seed) {
      yield* seed === undefined ? rows : permute(rows, seed);
    },
  };
}
