import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { logger } from "../../base/log.ts";
import type { ScoredDataGroup } from "../../rollout/scored.ts";
import type { ScoredSink } from "../../rollout/sinks.ts";
import { countLinesFrom, readLineAt } from "./lines.ts";
import type { ScoredGroupRecord } from "./tracker.ts";
import { describeError } from "../../base/errors.ts";

const log = logger("results-forwarder");

export interface ForwarderOptions {
  /** Where groups go (the runner's AtroposSink for `results.type: atropos`). */
  sink: ScoredSink;
  /** The job's results JSONL: the source of truth for done items; groups not yet forwarded are read from it. */
  resultsPath: string;
  /** Where the watermark is kept: the byte offset in the results JSONL up to which groups went to the sink. */
  forwardedPath: string;
  retryDelayMs?: number;
  /** Passes over a group that keep failing before it is given up (counted in `dropped`, with a log line). */
  maxAttempts?: number;
  /** Called when the backlog changes (forwarded, dropped, or a failure to report). */
  onChange?: () => void;
}

/**
 * Sends a job's scored groups on to a trainer after they are in the results JSONL. Forwarding reads that file in
 * the background, one group at a time in the order they were stored, retried with backoff; a watermark (the byte
 * offset after the last group the sink acknowledged or gave up on) is recorded after each, so a retried intake or
 * a controller restart sends no group twice (a crash between the trainer's answer and the record can resend that
 * one group). Nothing but the watermark is held in memory, however long the trainer is away.
 */
export class ResultsForwarder {
  readonly location: string;
  readonly #options: ForwarderOptions;
  /** Byte offset in the results JSONL of the next group to send. */
  #watermark: number;
  /** Groups stored after the watermark. */
  #pending: number;
  #attempts = 0;
  #opened = false;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** A group was stored after the running drain last read the file: it may have missed it, so it drains again. */
  #storedSinceRead = false;
  dropped = 0;
  lastError: string | undefined;

  private constructor(options: ForwarderOptions, watermark: number, pending: number) {
    this.#options = options;
    this.location = options.sink.location;
    this.#watermark = watermark;
    this.#pending = pending;
  }

  /** Reads the watermark and counts the backlog after it (the file I/O is asynchronous, like the rest of it). */
  static async open(options: ForwarderOptions): Promise<ResultsForwarder> {
    const watermark = await readWatermark(options.forwardedPath);
    return new ResultsForwarder(options, watermark, await countLinesFrom(options.resultsPath, watermark));
  }

  /** Groups stored but not yet acknowledged by the sink. */
  get pending(): number {
    return this.#pending;
  }

  /** Starts forwarding what is pending (the backlog from the JSONL, after a restart). */
  start(): void {
    this.#kick();
  }

  /** The tracker just stored a group (it is in the results JSONL). */
  stored(): void {
    this.#pending++;
    this.#storedSinceRead = true;
    this.#kick();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
    await this.#options.sink.close();
  }

  #kick(): void {
    if (this.#closed || this.#running || this.#timer || this.#pending === 0) return;
    this.#running = this.#drain()
      .catch((error: unknown) => this.#failed(error))
      .finally(() => {
        this.#running = undefined;
        this.#options.onChange?.();
        if (this.#storedSinceRead) this.#kick();
      });
  }

  async #drain(): Promise<void> {
    if (!this.#opened) {
      await this.#options.sink.open();
      this.#opened = true;
    }
    for (;;) {
      if (this.#closed) return;
      this.#storedSinceRead = false;
      const next = await readLineAt(this.#options.resultsPath, this.#watermark);
      if (next === undefined) return;
      const record = JSON.parse(next.line) as ScoredGroupRecord;
      try {
        await this.#options.sink.write(record.group as ScoredDataGroup);
      } catch (error) {
        if (++this.#attempts < (this.#options.maxAttempts ?? 5)) throw error;
        log.error(
          { index: record.index, err: error, sink: this.location },
          "group could not be forwarded; it stays in the results JSONL only",
        );
        this.dropped++;
      }
      this.#attempts = 0;
      this.lastError = undefined;
      this.#watermark = next.end;
      this.#pending = Math.max(0, this.#pending - 1);
      await writeWatermark(this.#options.forwardedPath, this.#watermark);
    }
  }

  #failed(error: unknown): void {
    this.lastError = describeError(error);
    log.warn({ err: error, sink: this.location, pending: this.#pending }, "forwarding failed, will retry");
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#kick();
      },
      Math.min(30_000, (this.#options.retryDelayMs ?? 1000) * 2 ** (Math.max(1, this.#attempts) - 1)),
    );
    this.#timer.unref();
  }
}

async function readWatermark(path: string): Promise<number> {
  try {
    const value = Number((await readFile(path, "utf8")).trim());
    return Number.isSafeInteger(value) && value >= 0 ? value : 0;
  } catch {
    return 0;
  }
}

/** Replaced whole (write, then rename), so a crash leaves the old watermark or the new one, never a fragment. */
async function writeWatermark(path: string, offset: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, String(offset));
  await rename(`${path}.tmp`, path);
}
