import { randomUUID } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { compactRanges } from "./ranges.ts";

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
  completedIndexes: string;
}

interface PersistedState {
  attempts: Record<number, number>;
  failed: number[];
  retried: number;
  leases: WorkLease[];
}

/**
 * The work of one RolloutJob: which item goes to which runner, attempts per item, and the scored groups.
 * The results JSONL is the source of truth for done items (a group is appended, flushed, then acknowledged),
 * so a restarted controller neither loses nor repeats a scored item; attempts and outstanding leases live in a
 * small state file replaced atomically.
 */
export class JobTracker {
  readonly resultsPath: string;
  readonly #statePath: string;
  readonly #items: number;
  readonly #backoffLimit: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #done = new Map<number, number[]>();
  #failed = new Set<number>();
  #attempts = new Map<number, number>();
  #leases = new Map<string, WorkLease>();
  #retried = 0;

  constructor(options: { resultsPath: string; statePath: string; items: number; backoffLimit: number; leaseTTLMs: number; now?: () => number }) {
    this.resultsPath = options.resultsPath;
    this.#statePath = options.statePath;
    this.#items = options.items;
    this.#backoffLimit = options.backoffLimit;
    this.#ttlMs = options.leaseTTLMs;
    this.#now = options.now ?? Date.now;
    this.#load();
  }

  #load(): void {
    let text = "";
    try {
      text = readFileSync(this.resultsPath, "utf8");
    } catch {}
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      try {
        const record = JSON.parse(line) as ScoredGroupRecord;
        if (!this.#done.has(record.index)) this.#done.set(record.index, record.scores);
      } catch {
        // A torn last line from a crash mid-append: that group was never acknowledged, so it runs again.
      }
    }
    try {
      const state = JSON.parse(readFileSync(this.#statePath, "utf8")) as PersistedState;
      this.#attempts = new Map(Object.entries(state.attempts).map(([k, v]) => [Number(k), v]));
      this.#failed = new Set(state.failed);
      this.#retried = state.retried;
      for (const lease of state.leases) if (!this.#done.has(lease.index)) this.#leases.set(lease.id, lease);
    } catch {}
  }

  #save(): void {
    mkdirSync(dirname(this.#statePath), { recursive: true });
    const state: PersistedState = { attempts: Object.fromEntries(this.#attempts), failed: [...this.#failed], retried: this.#retried, leases: [...this.#leases.values()] };
    writeFileSync(`${this.#statePath}.tmp`, JSON.stringify(state));
    renameSync(`${this.#statePath}.tmp`, this.#statePath);
  }

  /** Returns expired leases' items to the queue, or fails them once they used every attempt. */
  expire(): number {
    const now = this.#now();
    let expired = 0;
    for (const lease of [...this.#leases.values()]) {
      if (lease.expiresAt > now) continue;
      this.#leases.delete(lease.id);
      this.#afterFailedAttempt(lease.index);
      expired++;
    }
    if (expired > 0) this.#save();
    return expired;
  }

  #afterFailedAttempt(index: number): void {
    if ((this.#attempts.get(index) ?? 0) > this.#backoffLimit) this.#failed.add(index);
    else this.#retried++;
  }

  get leaseTTLMs(): number {
    return this.#ttlMs;
  }

  get finished(): boolean {
    return this.#done.size + this.#failed.size >= this.#items;
  }

  next(runner: string): Assignment {
    this.expire();
    if (this.finished) return { kind: "done" };
    const leased = new Set([...this.#leases.values()].map((l) => l.index));
    for (let index = 0; index < this.#items; index++) {
      if (this.#done.has(index) || this.#failed.has(index) || leased.has(index)) continue;
      const attempt = (this.#attempts.get(index) ?? 0) + 1;
      this.#attempts.set(index, attempt);
      const lease: WorkLease = { id: randomUUID(), runner, index, attempt, expiresAt: this.#now() + this.#ttlMs };
      this.#leases.set(lease.id, lease);
      this.#save();
      return { kind: "item", lease };
    }
    return { kind: "wait", retryAfterMs: 1000 };
  }

  renew(leaseId: string): WorkLease | undefined {
    const lease = this.#leases.get(leaseId);
    if (!lease) return undefined;
    lease.expiresAt = this.#now() + this.#ttlMs;
    this.#save();
    return lease;
  }

  /** The runner gives the item back unfinished (SIGTERM, suspend): the attempt does not count. */
  handBack(leaseId: string): boolean {
    const lease = this.#leases.get(leaseId);
    if (!lease) return false;
    this.#leases.delete(leaseId);
    this.#attempts.set(lease.index, Math.max(0, lease.attempt - 1));
    this.#save();
    return true;
  }

  /** The attempt failed for infrastructure reasons: retried up to backoffLimit, then the item fails. */
  fail(leaseId: string): boolean {
    const lease = this.#leases.get(leaseId);
    if (!lease) return false;
    this.#leases.delete(leaseId);
    this.#afterFailedAttempt(lease.index);
    this.#save();
    return true;
  }

  /** Stores a scored group once per item: a retried POST or a late duplicate is acknowledged, not stored. */
  submit(record: ScoredGroupRecord): { stored: boolean } {
    if (record.index < 0 || record.index >= this.#items) throw new RangeError(`item index ${record.index} is outside 0..${this.#items - 1}`);
    for (const lease of this.#leases.values()) if (lease.index === record.index) this.#leases.delete(lease.id);
    if (this.#done.has(record.index)) {
      this.#save();
      return { stored: false };
    }
    mkdirSync(dirname(this.resultsPath), { recursive: true });
    appendFileSync(this.resultsPath, `${JSON.stringify(record)}\n`);
    this.#done.set(record.index, record.scores);
    this.#failed.delete(record.index);
    this.#save();
    return { stored: true };
  }

  /** Releases every outstanding item lease (suspend, delete): items go back without spending an attempt. */
  handBackAll(): void {
    for (const id of [...this.#leases.keys()]) this.handBack(id);
  }

  aggregates(): JobAggregates {
    let scored = 0;
    let passed = 0;
    let scoreSum = 0;
    for (const scores of this.#done.values()) {
      scored += scores.length;
      passed += scores.filter((s) => s >= 1).length;
      scoreSum += scores.reduce((a, b) => a + b, 0);
    }
    return {
      items: this.#items,
      groups: this.#done.size,
      scored,
      passed,
      scoreSum,
      failed: this.#failed.size,
      retried: this.#retried,
      running: this.#leases.size,
      completedIndexes: compactRanges(this.#done.keys()),
    };
  }
}
