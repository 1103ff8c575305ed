import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
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

/** Appends one line; a write that fails part-way (disk full) is undone, so no fragment is left behind. */
export function appendLine(path: string, line: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, "a");
  try {
    const size = fstatSync(fd).size;
    try {
      writeFileSync(fd, `${line}\n`);
    } catch (error) {
      ftruncateSync(fd, size);
      throw error;
    }
  } finally {
    closeSync(fd);
  }
}
