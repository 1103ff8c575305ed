import { logger } from "../../base/log.ts";
import type { NomadClient } from "./client.ts";
import type { AllocationStub } from "./schemas.ts";

const log = logger("nomad-watch");

/**
 * Keeps the allocations matching one filter current with a blocking query on `/v1/allocations`: one long
 * poll for every sandbox, woken by Nomad on any change. Tolerates spurious wake-ups, resets when the index
 * goes backwards (snapshot restore), and backs off with jitter on errors.
 */
export class AllocationWatcher {
  private readonly client: NomadClient;
  private readonly filter: string;
  private readonly waitMs: number;
  private readonly abort = new AbortController();
  private allocs: AllocationStub[] = [];
  private index = 0;
  private synced = false;
  private started = false;
  private firstSync: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  private waiters = new Set<() => void>();

  constructor(client: NomadClient, filter: string, waitMs = 60_000) {
    this.client = client;
    this.filter = filter;
    this.waitMs = waitMs;
  }

  /**
   * The allocations as of the latest answer. Until one answer has arrived, a call waits for a listing; a failed
   * listing fails only the calls that waited for it (the next call lists again), never every later call.
   */
  async snapshot(): Promise<readonly AllocationStub[]> {
    if (!this.synced) {
      this.firstSync ??= this.refresh().finally(() => (this.firstSync = undefined));
      const sync = this.firstSync;
      if (!this.started) {
        this.started = true;
        void sync.then(
          () => this.loop(),
          () => this.loop(),
        );
      }
      await sync;
    }
    return this.allocs;
  }

  /**
   * A non-blocking read now (a miss, a connection error to a sandbox), applied like a poll answer whatever its
   * index: after an agent restart the index starts over, and the blocking poll would park until its wait.
   * Concurrent callers share one request.
   */
  refresh(): Promise<void> {
    this.refreshing ??= this.client
      .listAllocations({ filter: this.filter })
      .then((answer) => this.apply(answer.data, answer.index))
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Resolves true on the next change, or false after `timeoutMs`. */
  changed(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (changed: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(changed);
      };
      const wake = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(wake);
    });
  }

  close(): void {
    this.abort.abort();
    for (const waiter of [...this.waiters]) waiter();
  }

  private apply(allocs: AllocationStub[], index: number): void {
    this.allocs = allocs;
    this.index = index;
    this.synced = true;
    for (const waiter of [...this.waiters]) waiter();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        // After a failure the first read does not block: Nomad may have restarted with its index starting over.
        const index = failures > 0 ? 0 : Math.max(1, this.index);
        const answer = await this.client.listAllocations(
          { filter: this.filter },
          { index, waitMs: this.waitMs, signal: this.abort.signal },
        );
        if (answer.index < this.index) log.warn({ from: this.index, to: answer.index }, "Nomad index went backwards; resyncing");
        if (answer.index !== this.index) this.apply(answer.data, answer.index);
        failures = 0;
      } catch (error) {
        if (this.abort.signal.aborted) return;
        failures += 1;
        const delayMs = Math.min(10_000, 250 * 2 ** Math.min(failures, 6)) * (0.5 + Math.random());
        log.warn({ err: error, delayMs }, "allocation watch failed; retrying");
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }
}
