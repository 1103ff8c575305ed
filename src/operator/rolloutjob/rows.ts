import { open, readFile, rename, stat, type FileHandle } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

/** Rows are written to disk in chunks of about this size. */
const WRITE_CHUNK_BYTES = 1 << 20;

/**
 * A job's rows on disk, read by index: a JSONL file and the byte offset of each row (8 bytes per row in memory),
 * so the controller holds no dataset, however large. Written once, when the job first starts, then reused after
 * restarts: item indexes keep meaning the same rows even if the source (a URL, a Hub dataset) changed meanwhile.
 */
export class SpooledRows {
  readonly #file: FileHandle;
  readonly #offsets: Float64Array;

  private constructor(file: FileHandle, offsets: Float64Array) {
    this.#file = file;
    this.#offsets = offsets;
  }

  /** Opens the spool at `path`, writing it from `rows` first unless a complete one is there. */
  static async open(path: string, rows: () => AsyncIterable<unknown> | Iterable<unknown>): Promise<SpooledRows> {
    const offsets = (await readComplete(path)) ?? (await write(path, rows()));
    return new SpooledRows(await open(path, "r"), offsets);
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

/** The offsets file is renamed into place last: present means the rows file is whole. */
async function readComplete(path: string): Promise<Float64Array | undefined> {
  try {
    // Copied into a buffer of its own: a Float64Array view needs 8-byte alignment.
    const offsets = new Float64Array(new Uint8Array(await readFile(`${path}.offsets`)).buffer);
    if ((await stat(path)).size === offsets[offsets.length - 1]) return offsets;
  } catch {}
  return undefined;
}

async function write(path: string, rows: AsyncIterable<unknown> | Iterable<unknown>): Promise<Float64Array> {
  mkdirSync(dirname(path), { recursive: true });
  const offsets: number[] = [0];
  const file = await open(`${path}.tmp`, "w");
  try {
    let chunk: string[] = [];
    let chunkBytes = 0;
    let total = 0;
    for await (const row of rows) {
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
  await rename(`${path}.tmp`, path);
  const offsetsFile = await open(`${path}.offsets.tmp`, "w");
  try {
    await offsetsFile.write(new Uint8Array(packed.buffer));
    await offsetsFile.sync();
  } finally {
    await offsetsFile.close();
  }
  await rename(`${path}.offsets.tmp`, `${path}.offsets`);
  return packed;
}
