import { open, readFile, rename, stat, type FileHandle } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

/** Rows are written to disk in chunks of about this size. */
const WRITE_CHUNK_BYTES = 1 << 20;

/**
 * A job's rows on disk, read by index: a JSONL file and the byte offset of each row (8 bytes per row in memory),
 * so the controller holds no dataset, however large. Written once, when the job first starts, then reused after
 * restarts: item indexes keep meaning the same rows even if the source (a URL, a Hub dataset) changed meanwhile.
 * How many rows the environment left out is kept beside them (`<path>.filtered`), since the source is not read again.
 */
export class SpooledRows {
  readonly #file: FileHandle;
  readonly #offsets: Float64Array;
  /** Source rows the environment left out while the spool was written. */
  readonly filtered: number;

  private constructor(file: FileHandle, spool: Spool) {
    this.#file = file;
    this.#offsets = spool.offsets;
    this.filtered = spool.filtered;
  }

  /** Opens the spool at `path`, writing it from the source first unless a complete one is there. */
  static async open(path: string, source: () => RowSource): Promise<SpooledRows> {
    const spool = (await readComplete(path)) ?? (await write(path, source()));
    return new SpooledRows(await open(path, "r"), spool);
  }

  get count(): number {
    return this.#offsets.length - 1;
  }

  async row(index: number): Promise<unknown> {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RangeError(`row ${index} is outside 0..${this.count - 1}`);
    const start = this.#offsets[index]!;
    const buffer = Buffer.alloc(this.#offsets[index + 1]! - start);
    await this.#file.read(buffer, 0, buffer.length, start);
    return JSON.parse(buffer.toString("utf8"));
  }

  close(): Promise<void> {
    return this.#file.close();
  }
}

export interface RowSource {
  rows: AsyncIterable<unknown> | Iterable<unknown>;
  /** Rows left out of `rows`, read once they are all consumed; none when unset. */
  filtered?: () => number;
}

interface Spool {
  offsets: Float64Array;
  filtered: number;
}

/** The offsets file is renamed into place last: present means the rows file (and its filtered count) is whole. */
async function readComplete(path: string): Promise<Spool | undefined> {
  try {
    // Copied into a buffer of its own: a Float64Array view needs 8-byte alignment.
    const offsets = new Float64Array(new Uint8Array(await readFile(`${path}.offsets`)).buffer);
    if ((await stat(path)).size !== offsets[offsets.length - 1]) return undefined;
    // Spools written before the count was kept have no such file: nothing was counted as left out.
    const filtered = Number(await readFile(`${path}.filtered`, "utf8").catch(() => "0"));
    if (Number.isInteger(filtered) && filtered >= 0) return { offsets, filtered };
  } catch {}
  return undefined;
}

async function write(path: string, source: RowSource): Promise<Spool> {
  mkdirSync(dirname(path), { recursive: true });
  const offsets: number[] = [0];
  const file = await open(`${path}.tmp`, "w");
  try {
    let chunk: string[] = [];
    let chunkBytes = 0;
    let total = 0;
    for await (const row of source.rows) {
      const line = `${JSON.stringify(row)}\n`;
      const bytes = Buffer.byteLength(line);
      total += bytes;
      offsets.push(total);
      chunk.push(line);
      chunkBytes += bytes;
      if (chunkBytes >= WRITE_CHUNK_BYTES) {
        await file.write(chunk.join(""));
        chunk = [];
        chunkBytes = 0;
      }
    }
    await file.write(chunk.join(""));
    await file.sync();
  } finally {
    await file.close();
  }
  const packed = Float64Array.from(offsets);
  const filtered = source.filtered?.() ?? 0;
  await rename(`${path}.tmp`, path);
  await writeWhole(`${path}.filtered`, Buffer.from(String(filtered)));
  await writeWhole(`${path}.offsets`, new Uint8Array(packed.buffer));
  return { offsets: packed, filtered };
}

/** Written beside, synced, then renamed into place: a crash leaves the old file or the new one, never half. */
async function writeWhole(path: string, data: Uint8Array): Promise<void> {
  const file = await open(`${path}.tmp`, "w");
  try {
    await file.write(data);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(`${path}.tmp`, path);
}
