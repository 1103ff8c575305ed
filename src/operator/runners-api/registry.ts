import type { RolloutJobSpec } from "../../api/index.ts";
import type { PoolRuntime } from "../sandboxpool/runtimes.ts";
import type { ResultsForwarder } from "../rolloutjob/forward.ts";
import type { SpooledRows } from "../rolloutjob/rows.ts";
import type { JobTracker } from "../rolloutjob/tracker.ts";

/** What the runners' API knows about a running job; the RolloutJob reconciler keeps it current. */
export interface ActiveJob {
  key: string;
  /** The RolloutJob's uid: a job re-created under the same name is another job. */
  uid: string;
  poolKey: string;
  readonly token: string;
  spec: RolloutJobSpec;
  rows: SpooledRows;
  environmentConfig: Record<string, unknown>;
  tracker: JobTracker;
  /** Sends stored groups on to a trainer (`results.type: atropos`). */
  forwarder: ResultsForwarder | undefined;
  suspended: boolean;
  /** The job's pool was deleted under it: runners stop, and failed attempts are handed back, not counted. */
  poolGone: boolean;
  /** Slot lease id → the job that holds it, so no runner can touch another job's slot. */
  slotLeases: Set<string>;
  /** Called when a scored group arrived or an item changed hands (the job's status is due). */
  onProgress: () => void;
}

export class ActiveJobs {
  readonly #jobs = new Map<string, ActiveJob>();
  get(key: string): ActiveJob | undefined {
    return this.#jobs.get(key);
  }
  set(job: ActiveJob): void {
    this.#jobs.set(job.key, job);
  }
  delete(key: string): ActiveJob | undefined {
    const job = this.#jobs.get(key);
    this.#jobs.delete(key);
    return job;
  }
  values(): IterableIterator<ActiveJob> {
    return this.#jobs.values();
  }
}

export type PoolLookup = (poolKey: string) => PoolRuntime | undefined;
