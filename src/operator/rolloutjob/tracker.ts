import { randomUUID } from "node:crypto";
import { COMPLETED_INDEXES_MAX_LENGTH } from "../../api/index.ts";
import { LineFile, readWholeLines } from "./lines.ts";
import { logger } from "../../base/log.ts";
import { compactSortedRanges } from "./ranges.ts";
import { realClock, type Clock } from "../../base/clock.ts";
import type { ScoredDataGroup } from "../../rollout/scored.ts";

/** One item handed to a runner; it returns to the queue when its lease expires. */
export interface WorkLease {
  id: string;
  runner: string;
  index: number;
  attempt: number;
  expiresAt: number;
}

export interface ScoredGroupRecord {
  index: number;
  attempt: number;
  scores: number[];
  group: unknown;
}

export type Assignment = { kind: "item"; lease: WorkLease } | { kind: "wait"; retryAfterMs: number } | { kind: "done" };

export interface JobAggregates {
  items: number;
  groups: number;
  scored: number;
  passed: number;
  scoreSum: number;
  failed: number;
  retried: number;
  running: number;
  /** Dataset rows the environment left out (not items; reported only). */
  filtered: number;
  /** Stored groups the forwarder does not send for token restarts (results.holdBackTokenRestarts). */
  heldBack: number;
  completedIndexes: string;
}

/** One line of the journal: what changed since the snapshot at its top (renewals are not journaled). */
type JournalEntry =
  | { lease: WorkLease }
  | { handBack: string }
  | { fail: string }
  | { snapshot: { cursor: number; attempts: [number, number][]; failed: number[]; retried: number; leases: WorkLease[] } };

const log = logger("job-tracker");

/** Journal lines after which it is rewritten as one snapshot (small: attempts of unfinished items and live leases). */
const COMPACT_AFTER_LINES = 10_000;

/**
 * The work of one RolloutJob: which item goes to which runner, attempts per item, and the scored groups.
 * The results JSONL is the source of truth for done items (a group is appended, written, then acknowledged; a
 * duplicate of a group still being written is acknowledged only once it is written), so a restarted controller
 * neither loses nor repeats a scored item; leases and failed attempts are appended to a journal (a lease is written
 * before it is handed out), compacted now and then. Writes are asynchronous, one file's in order: the controller's
 * event loop, which serves every runner, never waits on the disk. Every call costs the same whatever the job's size:
 * items are handed out from a cursor plus a queue of items that came back, and status aggregates are kept as running
 * sums.
 */
export class JobTracker {
  readonly resultsPath: string;
  readonly #journalPath: string;
  readonly #results: LineFile;
  readonly #journal: LineFile;
  /** Groups being written, by item: a duplicate waits for the first one's write. */
  readonly #storing = new Map<number, Promise<void>>();
  readonly #jobUid: string | undefined;
  readonly #items: number;
  readonly #filtered: number;
  readonly #backoffLimit: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** 1 where the item's group is stored. */
  readonly #done: Uint8Array;
  /** Attempts started per item (bounded by backoffLimit + 1 <= 101). */
  readonly #attempts: Uint8Array;
  #failed = new Set<number>();
  #leases = new Map<string, WorkLease>();
  #leaseOfIndex = new Map<number, string>();
  /** Items below the cursor that are neither done, failed nor leased, in the order they came back. */
  #returned = new Set<number>();
  /** Items at or after the cursor were never handed out. */
  #cursor = 0;
  /** No lease expires before this (a lower bound: renewals only push expiries later). */
  #earliestExpiry = Infinity;
  #retried = 0;
  #groups = 0;
  #scored = 0;
  #passed = 0;
  #scoreSum = 0;
  #heldBack = 0;
  readonly #isHeldBack: (group: ScoredDataGroup) => boolean;
  #journalLines = 0;

  constructor(options: {
    resultsPath: string;
    journalPath: string;
    jobUid?: string;
    items: number;
    /** Dataset rows the environment left out before the items were numbered (reported in aggregates). */
    filtered?: number;
    backoffLimit: number;
    leaseTTLMs: number;
    clock?: Clock;
    /** Which stored groups are held back from the trainer, counted in `heldBack`; none when unset. */
    isHeldBack?: (group: ScoredDataGroup) => boolean;
  }) {
    this.resultsPath = options.resultsPath;
    this.#isHeldBack = options.isHeldBack ?? (() => false);
    this.#journalPath = options.journalPath;
    this.#results = new LineFile(options.resultsPath);
    this.#journal = new LineFile(options.journalPath);
    this.#jobUid = options.jobUid;
    this.#items = options.items;
    this.#filtered = options.filtered ?? 0;
    this.#backoffLimit = options.backoffLimit;
    this.#ttlMs = options.leaseTTLMs;
    const clock = options.clock ?? realClock;
    this.#now = () => clock.now();
    this.#done = new Uint8Array(options.items);
    this.#attempts = new Uint8Array(options.items);
    this.#load();
  }

  #load(): void {
    for (const line of readWholeLines(this.resultsPath)) {
      try {
        const record = JSON.parse(line) as ScoredGroupRecord & { job?: string };
        // A results file named in the spec may hold an earlier job's groups: they are not this job's.
        if (this.#jobUid !== undefined && record.job !== undefined && record.job !== this.#jobUid) continue;
        if (Number.isInteger(record.index) && record.index >= 0 && record.index < this.#items) this.#markDone(record);
      } catch {
        // An unreadable line holds no group of ours (a torn last line, never acknowledged, was cut off on read).
      }
    }
    // A torn last line is cut off on read: that change was never acknowledged to a runner.
    for (const line of readWholeLines(this.#journalPath)) {
      try {
        this.#replay(JSON.parse(line) as JournalEntry);
      } catch {
        // An unreadable line changes nothing.
      }
      this.#journalLines++;
    }
    // Runners renew with the new leader; none is cut off for the time this controller was away.
    const expiresAt = this.#now() + this.#ttlMs;
    for (const [id, lease] of this.#leases) {
      if (this.#done[lease.index]) this.#dropLease(id);
      else lease.expiresAt = expiresAt;
    }
    this.#earliestExpiry = this.#leases.size > 0 ? expiresAt : Infinity;
    for (const index of this.#failed) if (this.#done[index]) this.#failed.delete(index);
    for (let index = 0; index < this.#cursor; index++) {
      if (!this.#done[index] && !this.#failed.has(index) && !this.#leaseOfIndex.has(index)) this.#returned.add(index);
    }
  }

  #replay(entry: JournalEntry): void {
    if ("snapshot" in entry) {
      const { cursor, attempts, failed, retried, leases } = entry.snapshot;
      this.#cursor = cursor;
      for (const [index, count] of attempts) this.#attempts[index] = count;
      this.#failed = new Set(failed);
      this.#retried = retried;
      for (const lease of leases) this.#addLease(lease);
    } else if ("lease" in entry) {
      this.#attempts[entry.lease.index] = entry.lease.attempt;
      this.#cursor = Math.max(this.#cursor, entry.lease.index + 1);
      this.#addLease(entry.lease);
    } else if ("handBack" in entry) {
      const lease = this.#dropLease(entry.handBack);
      if (lease) this.#attempts[lease.index] = Math.max(0, lease.attempt - 1);
    } else {
      const lease = this.#dropLease(entry.fail);
      if (lease) this.#countFailedAttempt(lease.index);
    }
  }

  #append(entry: JournalEntry): Promise<void> {
    // The entry is already applied in memory, so a snapshot taken now includes it.
    if (this.#journalLines >= COMPACT_AFTER_LINES) return this.#compact();
    this.#journalLines++;
    return this.#journal.append(JSON.stringify(entry));
  }

  /** Rewrites the journal as one snapshot of the state in memory now (the writes asked before it land first). */
  #compact(): Promise<void> {
    const attempts: [number, number][] = [];
    for (let index = 0; index < this.#cursor; index++)
      if (!this.#done[index] && this.#attempts[index]! > 0) attempts.push([index, this.#attempts[index]!]);
    const snapshot: JournalEntry = {
      snapshot: { cursor: this.#cursor, attempts, failed: [...this.#failed], retried: this.#retried, leases: [...this.#leases.values()] },
    };
    this.#journalLines = 1;
    return this.#journal.replace(JSON.stringify(snapshot));
  }

  #addLease(lease: WorkLease): void {
    this.#leases.set(lease.id, lease);
    this.#leaseOfIndex.set(lease.index, lease.id);
    this.#returned.delete(lease.index);
    this.#earliestExpiry = Math.min(this.#earliestExpiry, lease.expiresAt);
  }

  #dropLease(id: string): WorkLease | undefined {
    const lease = this.#leases.get(id);
    if (!lease) return undefined;
    this.#leases.delete(id);
    this.#leaseOfIndex.delete(lease.index);
    return lease;
  }

  /** The item comes back for another attempt, or fails once it used every attempt. */
  #countFailedAttempt(index: number): void {
    if (this.#attempts[index]! > this.#backoffLimit) this.#failed.add(index);
    else this.#retried++;
  }

  /** An item that is not done, failed or leased goes back in the queue. */
  #requeue(index: number): void {
    if (!this.#done[index] && !this.#failed.has(index)) this.#returned.add(index);
  }

  #markDone({ index, scores, group }: ScoredGroupRecord): void {
    if (this.#done[index]) return;
    const heldBack = this.#isHeldBack(group as ScoredDataGroup);
    this.#done[index] = 1;
    this.#groups++;
    if (heldBack) this.#heldBack++;
    this.#scored += scores.length;
    for (const score of scores) {
      if (score >= 1) this.#passed++;
      this.#scoreSum += score;
    }
  }

  /** Returns expired leases' items to the queue, or fails them once they used every attempt. */
  expire(): number {
    const now = this.#now();
    if (now < this.#earliestExpiry) return 0;
    let expired = 0;
    let earliest = Infinity;
    for (const lease of [...this.#leases.values()]) {
      if (lease.expiresAt > now) {
        earliest = Math.min(earliest, lease.expiresAt);
        continue;
      }
      this.#dropLease(lease.id);
      this.#countFailedAttempt(lease.index);
      this.#requeue(lease.index);
      // Not waited for: a lost entry only lets the restored lease expire (and count) once more after a restart.
      this.#append({ fail: lease.id }).catch((error: unknown) => log.error({ err: error, job: this.#jobUid }, "journal write failed"));
      expired++;
    }
    this.#earliestExpiry = earliest;
    return expired;
  }

  get leaseTTLMs(): number {
    return this.#ttlMs;
  }

  get finished(): boolean {
    return this.#groups + this.#failed.size >= this.#items;
  }

  async next(runner: string): Promise<Assignment> {
    this.expire();
    if (this.finished) return { kind: "done" };
    let index: number | undefined = this.#returned.values().next().value;
    if (index !== undefined) this.#returned.delete(index);
    else if (this.#cursor < this.#items) index = this.#cursor++;
    else return { kind: "wait", retryAfterMs: 1000 };
    const attempt = this.#attempts[index]! + 1;
    this.#attempts[index] = attempt;
    const lease: WorkLease = { id: randomUUID(), runner, index, attempt, expiresAt: this.#now() + this.#ttlMs };
    this.#addLease(lease);
    await this.#append({ lease });
    return { kind: "item", lease };
  }

  /** Kept in memory only: after a restart every restored lease gets a full TTL anyway. */
  renew(leaseId: string): WorkLease | undefined {
    const lease = this.#leases.get(leaseId);
    if (!lease) return undefined;
    lease.expiresAt = this.#now() + this.#ttlMs;
    return lease;
  }

  /** The runner gives the item back unfinished (SIGTERM, suspend): the attempt does not count. */
  async handBack(leaseId: string): Promise<boolean> {
    const lease = this.#dropLease(leaseId);
    if (!lease) return false;
    this.#attempts[lease.index] = Math.max(0, lease.attempt - 1);
    this.#requeue(lease.index);
    await this.#append({ handBack: leaseId });
    return true;
  }

  /** The attempt failed for infrastructure reasons: retried up to backoffLimit, then the item fails. */
  async fail(leaseId: string): Promise<boolean> {
    const lease = this.#dropLease(leaseId);
    if (!lease) return false;
    this.#countFailedAttempt(lease.index);
    this.#requeue(lease.index);
    await this.#append({ fail: leaseId });
    return true;
  }

  /** Stores a scored group once per item: a retried POST or a late duplicate is acknowledged, not stored. */
  async submit(record: ScoredGroupRecord): Promise<{ stored: boolean }> {
    if (record.index < 0 || record.index >= this.#items)
      throw new RangeError(`item index ${record.index} is outside 0..${this.#items - 1}`);
    const leaseId = this.#leaseOfIndex.get(record.index);
    if (leaseId !== undefined) this.#dropLease(leaseId);
    // A duplicate is acknowledged only once the first is in the file; if that write failed, this one stores it.
    for (let first = this.#storing.get(record.index); first !== undefined; first = this.#storing.get(record.index))
      await first.catch(() => undefined);
    if (this.#done[record.index]) return { stored: false };
    const written = this.#results.append(JSON.stringify(this.#jobUid === undefined ? record : { job: this.#jobUid, ...record }));
    this.#storing.set(record.index, written);
    try {
      await written;
    } finally {
      this.#storing.delete(record.index);
    }
    this.#markDone(record);
    this.#failed.delete(record.index);
    this.#returned.delete(record.index);
    return { stored: true };
  }

  /** Releases every outstanding item lease (suspend, delete): items go back without spending an attempt. */
  async handBackAll(): Promise<void> {
    await Promise.all([...this.#leases.keys()].map((id) => this.handBack(id)));
  }

  aggregates(): JobAggregates {
    return {
      items: this.#items,
      groups: this.#groups,
      scored: this.#scored,
      passed: this.#passed,
      scoreSum: this.#scoreSum,
      failed: this.#failed.size,
      retried: this.#retried,
      running: this.#leases.size,
      heldBack: this.#heldBack,
      filtered: this.#filtered,
      completedIndexes: compactSortedRanges(doneIndexes(this.#done), COMPLETED_INDEXES_MAX_LENGTH),
    };
  }
}

function* doneIndexes(done: Uint8Array): Generator<number> {
  for (let index = 0; index < done.length; index++) if (done[index]) yield index;
}
