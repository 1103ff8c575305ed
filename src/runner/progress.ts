/**
 * Progress of an embedded run: counters updated from group events, shown as a live cli-progress bar on a
 * terminal and as one plain line per finished item otherwise (CI logs, pipes).
 */
import { SingleBar } from "cli-progress";
import type { GroupEvent } from "./group.ts";
import type { ScoredDataGroup } from "./scored.ts";

export class ProgressCounters {
  items = 0;
  /** Items known so far; equals the dataset size once it is read to the end. */
  total: number | undefined;
  groups = 0;
  failed = 0;
  running = 0;
  trajectories = 0;
  passed = 0;
  scoreSum = 0;
  retries = 0;
  readonly startedAt = performance.now();

  onEvent(event: GroupEvent): void {
    if (event.type === "trajectory-start") this.running++;
    else this.running--;
    if (event.type === "trajectory-retry") this.retries++;
  }

  onGroup(group: ScoredDataGroup): void {
    this.groups++;
    this.trajectories += group.scores.length;
    this.passed += group.scores.filter((s) => s >= 1).length;
    this.scoreSum += group.scores.reduce((a, b) => a + b, 0);
  }

  get finishedItems(): number {
    return this.groups + this.failed;
  }
  get passRate(): number {
    return this.trajectories === 0 ? 0 : this.passed / this.trajectories;
  }
  get meanScore(): number {
    return this.trajectories === 0 ? 0 : this.scoreSum / this.trajectories;
  }
  get elapsedSeconds(): number {
    return (performance.now() - this.startedAt) / 1000;
  }
  /** Seconds left at the current rate; undefined until an item finished and the total is known. */
  get etaSeconds(): number | undefined {
    const done = this.finishedItems;
    if (done === 0 || this.total === undefined) return undefined;
    return (this.elapsedSeconds / done) * (this.total - done);
  }
}

export interface ProgressView {
  update(): void;
  itemFinished(line: string): void;
  stop(): void;
}

const percent = (x: number): string => `${(x * 100).toFixed(0)}%`;

function payload(c: ProgressCounters): Record<string, string | number> {
  return { running: c.running, pass: percent(c.passRate), mean: c.meanScore.toFixed(2), failed: c.failed, retries: c.retries };
}

class BarView implements ProgressView {
  readonly #bar: SingleBar;
  readonly #counters: ProgressCounters;
  constructor(counters: ProgressCounters, stream: NodeJS.WriteStream) {
    this.#counters = counters;
    this.#bar = new SingleBar({
      stream,
      format: "{bar} {value}/{total} items | running {running} | pass {pass} | mean {mean} | failed {failed} | retries {retries} | ETA {eta_formatted}",
      hideCursor: true,
      etaBuffer: 20,
    });
    this.#bar.start(counters.total ?? counters.items, 0, payload(counters));
  }
  update(): void {
    const c = this.#counters;
    this.#bar.setTotal(c.total ?? Math.max(c.items, 1));
    this.#bar.update(c.finishedItems, payload(c));
  }
  itemFinished(): void {
    this.update();
  }
  stop(): void {
    this.update();
    this.#bar.stop();
  }
}

class LineView implements ProgressView {
  readonly #counters: ProgressCounters;
  readonly #write: (line: string) => void;
  constructor(counters: ProgressCounters, write: (line: string) => void) {
    this.#counters = counters;
    this.#write = write;
  }
  update(): void {}
  itemFinished(line: string): void {
    const c = this.#counters;
    const eta = c.etaSeconds === undefined ? "?" : `${Math.round(c.etaSeconds)}s`;
    this.#write(
      `[${c.finishedItems}/${c.total ?? "?"}] ${line} | running ${c.running} | pass ${percent(c.passRate)} | ` +
        `elapsed ${Math.round(c.elapsedSeconds)}s | ETA ${eta}`,
    );
  }
  stop(): void {}
}

export function progressView(counters: ProgressCounters, stream: NodeJS.WriteStream = process.stdout): ProgressView {
  return stream.isTTY ? new BarView(counters, stream) : new LineView(counters, (line) => stream.write(`${line}\n`));
}
