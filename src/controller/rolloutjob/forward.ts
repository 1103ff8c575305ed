import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { logger } from "../../log.ts";
import type { ScoredDataGroup } from "../../runner/scored.ts";
import type { ScoredSink } from "../../runner/sinks.ts";
import type { ScoredGroupRecord } from "./tracker.ts";

const log = logger("results-forwarder");

export interface ForwarderOptions {
  /** Where groups go (the runner's AtroposSink for `results.type: atropos`). */
  sink: ScoredSink;
  /** The job's results JSONL: the source of truth for done items; groups not yet forwarded are read from it. */
  resultsPath: string;
  /** Item indexes whose group the sink acknowledged, one a line (appended, so a restart resends none of them). */
  forwardedPath: string;
  retryDelayMs?: number;
  /** Passes over a group that keep failing before it is given up (counted in `dropped`, with a log line). */
  maxAttempts?: number;
  /** Called when the backlog changes (forwarded, dropped, or a failure to report). */
  onChange?: () => void;
}

const readLines = (path: string): string[] => {
  try {
    return readFileSync(path, "utf8").split("\n").filter((line) => line.trim() !== "");
  } catch {
    return [];
  }
};

/**
 * Sends a job's scored groups on to a trainer after they are in the results JSONL. Forwarding runs in the
 * background, one group at a time in index order, retried with backoff; each group is sent until acknowledged
 * once, and the acknowledgement is recorded, so a retried intake or a controller restart sends no group twice
 * (a crash between the trainer's answer and the record can resend that one group).
 */
export class ResultsForwarder {
  readonly location: string;
  readonly #options: ForwarderOptions;
  readonly #forwarded = new Set<number>();
  readonly #pending = new Map<number, ScoredDataGroup>();
  readonly #attempts = new Map<number, number>();
  #opened = false;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  dropped = 0;
  lastError: string | undefined;

  constructor(options: ForwarderOptions) {
    this.#options = options;
    this.location = options.sink.location;
    for (const line of readLines(options.forwardedPath)) this.#forwarded.add(Number(line));
    for (const line of readLines(options.resultsPath)) {
      try {
        this.#add(JSON.parse(line) as ScoredGroupRecord);
      } catch {
        // A torn last line: that group was never acknowledged to its runner and comes again.
      }
    }
  }

  /** Groups stored but not yet acknowledged by the sink. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Starts forwarding what is pending (the backlog from the JSONL, after a restart). */
  start(): void {
    this.#kick();
  }

  /** A group the tracker just stored. */
  enqueue(record: ScoredGroupRecord): void {
    this.#add(record);
    this.#kick();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
    await this.#options.sink.close();
  }

  #add(record: ScoredGroupRecord): void {
    if (!this.#forwarded.has(record.index)) this.#pending.set(record.index, record.group as ScoredDataGroup);
  }

  #kick(): void {
    if (this.#closed || this.#running || this.#timer || this.#pending.size === 0) return;
    this.#running = this.#drain()
      .catch((error: unknown) => this.#failed(error))
      .finally(() => {
        this.#running = undefined;
        this.#options.onChange?.();
      });
  }

  async #drain(): Promise<void> {
    if (!this.#opened) {
      await this.#options.sink.open();
      this.#opened = true;
    }
    while (!this.#closed && this.#pending.size > 0) {
      const index = Math.min(...this.#pending.keys());
      const group = this.#pending.get(index) as ScoredDataGroup;
      try {
        await this.#options.sink.write(group);
      } catch (error) {
        const attempts = (this.#attempts.get(index) ?? 0) + 1;
        this.#attempts.set(index, attempts);
        if (attempts < (this.#options.maxAttempts ?? 5)) throw error;
        log.error({ index, err: error, sink: this.location }, "group could not be forwarded; it stays in the results JSONL only");
        this.#pending.delete(index);
        this.dropped++;
        continue;
      }
      mkdirSync(dirname(this.#options.forwardedPath), { recursive: true });
      appendFileSync(this.#options.forwardedPath, `${index}\n`);
      this.#forwarded.add(index);
      this.#pending.delete(index);
      this.#attempts.delete(index);
      this.lastError = undefined;
    }
  }

  #failed(error: unknown): void {
    this.lastError = error instanceof Error ? error.message : String(error);
    log.warn({ err: error, sink: this.location, pending: this.#pending.size }, "forwarding failed, will retry");
    const failures = Math.max(1, ...this.#attempts.values());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, Math.min(30_000, (this.#options.retryDelayMs ?? 1000) * 2 ** (failures - 1)));
    this.#timer.unref();
  }
}
