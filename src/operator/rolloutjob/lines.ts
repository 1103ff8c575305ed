import { readFileSync, truncateSync } from "node:fs";
import { mkdir, open, rename, writeFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * The file's whole lines. A torn last line (the process died mid-append) is cut off the file, so the next append
 * starts a line of its own instead of joining the fragment and becoming unreadable itself.
 */
export function readWholeLines(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const whole = text.slice(0, text.lastIndexOf("\n") + 1);
  if (whole.length < text.length) truncateSync(path, Buffer.byteLength(whole));
  return whole.split("\n").filter((line) => line.trim() !== "");
}

/**
 * One file's writer on the event loop: appends (and a rewrite) run one at a time in the order asked, off the loop
 * (the controller serves every runner on it), each resolving once its bytes are in the file. An append that fails
 * part-way (disk full) is undone, so no fragment is left behind; a failed write does not stop the ones after it.
 */
export class LineFile {
  readonly path: string;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  append(line: string): Promise<void> {
    return this.#inTurn(async () => {
      await mkdir(dirname(this.path), { recursive: true });
      const file = await open(this.path, "a");
      try {
        const { size } = await file.stat();
        // One write(2) in append mode: another job's writer of the same results file cannot land inside the line.
        const bytes = Buffer.from(`${line}\n`);
        try {
          const { bytesWritten } = await file.write(bytes);
          if (bytesWritten !== bytes.length) throw new Error(`short write to ${this.path} (${bytesWritten} of ${bytes.length} bytes)`);
        } catch (error) {
          await file.truncate(size);
          throw error;
        }
      } finally {
        await file.close();
      }
    });
  }

  /** Replaces the whole file with `line` after the writes asked before: written beside, then renamed over it. */
  replace(line: string): Promise<void> {
    return this.#inTurn(async () => {
      await writeFile(`${this.path}.tmp`, `${line}\n`);
      await rename(`${this.path}.tmp`, this.path);
    });
  }

  #inTurn(write: () => Promise<void>): Promise<void> {
    const done = this.#tail.then(write);
    this.#tail = done.catch(() => undefined);
    return done;
  }
}

const READ_CHUNK_BYTES = 1 << 16;

/** Reads `path` from `offset` in chunks, calling `visit` with each chunk until it returns false or the file ends. */
async function readChunksFrom(path: string, offset: number, visit: (chunk: Buffer) => boolean): Promise<void> {
  let file: FileHandle;
  try {
    file = await open(path, "r");
  } catch {
    return;
  }
  try {
    const buffer = Buffer.alloc(READ_CHUNK_BYTES);
    for (let position = offset; ;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0 || !visit(buffer.subarray(0, bytesRead))) return;
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
}

/** The whole line that starts at byte `offset`, and where the next one starts; undefined at the end or a torn line. */
export async function readLineAt(path: string, offset: number): Promise<{ line: string; end: number } | undefined> {
  const parts: Buffer[] = [];
  let found: { line: string; end: number } | undefined;
  let length = 0;
  await readChunksFrom(path, offset, (chunk) => {
    const newline = chunk.indexOf(10);
    // Copied: the chunk's buffer is reused by the next read.
    parts.push(Buffer.from(newline === -1 ? chunk : chunk.subarray(0, newline)));
    length += newline === -1 ? chunk.length : newline;
    if (newline === -1) return true;
    found = { line: Buffer.concat(parts).toString("utf8"), end: offset + length + 1 };
    return false;
  });
  return found;
}

/** Whole lines from byte `offset` to the end, counted without parsing them. */
export async function countLinesFrom(path: string, offset: number): Promise<number> {
  let count = 0;
  await readChunksFrom(path, offset, (chunk) => {
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) count++;
    return true;
  });
  return count;
}
