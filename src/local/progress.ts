/**
 * Progress of an embedded run: counters updated from group events, shown as a live cli-progress bar on a
 * terminal and as one plain line per finished item otherwise (CI logs, pipes).
 */
import { SingleBar } from "cli-progress";
import type { GroupEvent } from "../rollout/group.ts";
import type { ScoredDataGroup } from "../rollout/scored.ts";

export class ProgressCounters {
  items = 0;
  /** Dataset rows the environment left out so far. */
  filtered = 0;
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
/** Finished items out of the total, "?" while the dataset is still being read; rows left out, once there are some. */
const done = (c: ProgressCounters): string => `${c.finishedItems}/${c.total ?? "?"}${c.filtered > 0 ? ` (${c.filtered} filtered)` : ""}`;
const eta = (c: ProgressCounters): string => (c.etaSeconds === undefined ? "?" : `${Math.round(c.etaSeconds)}s`);

const BAR_WIDTH = 40;
function bar(c: ProgressCounters): string {
  if (c.total === undefined) return "";
  const filled = c.total === 0 ? BAR_WIDTH : Math.round((c.finishedItems / c.total) * BAR_WIDTH);
  return `${"=".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)} `;
}

/**
 * The live line, drawn from the counters rather than cli-progress's value and total: those would take the items
 * read so far for the total (and estimate an ETA from it). No bar until the total is known.
 */
function barLine(c: ProgressCounters): string {
  return (
    `${bar(c)}${done(c)} items | running ${c.running} | pass ${percent(c.passRate)} | mean ${c.meanScore.toFixed(2)} | ` +
    `failed ${c.failed} | retries ${c.retries} | ETA ${eta(c)}`
  );
}

class BarView implements ProgressView {
  readonly #bar: SingleBar;
  readonly #counters: ProgressCounters;
  constructor(counters: ProgressCounters, stream: NodeJS.WriteStream) {
    this.#counters = counters;
    this.#bar = new SingleBar({ stream, format: () => barLine(counters), hideCursor: true });
    this.#bar.start(1, 0);
  }
  update(): void {
    this.#bar.update(this.#counters.finishedItems);
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
    this.#write(
      `[${done(c)}] ${line} | running ${c.running} | pass ${percent(c.passRate)} | ` +
        `elapsed ${Math.round(c.elapsedSeconds)}s | ETA ${eta(c)}`,
    );
  }
  stop(): void {}
}

export function progressView(counters: ProgressCounters, stream: NodeJS.WriteStream = process.stdout): ProgressView {
  return stream.isTTY ? new BarView(counters, stream) : new LineView(counters, (line) => stream.write(`${line}\n`));
}
