import { logger } from "../../base/log.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { WorkQueue } from "./workqueue.ts";

export interface ReconcileResult {
  /** Reconcile this key again after this long even without a watch event (lease TTLs, deadlines). */
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export interface ControllerOptions {
  name: string;
  reconcile: Reconcile;
  metrics: ControllerMetrics;
  workers?: number;
  queue?: WorkQueue;
}

function isConflict(error: unknown): boolean {
  const code = (error as { code?: number; statusCode?: number } | null)?.code ?? (error as { statusCode?: number } | null)?.statusCode;
  return code === 409;
}

/**
 * One worker loop for every reconciler: `done` after each key, `forget` on success, rate-limited requeue on error
 * (409 conflicts are expected under optimistic concurrency and logged at info), `requeueAfterMs` through the same queue.
 */
export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly #reconcile: Reconcile;
  readonly #metrics: ControllerMetrics;
  readonly #workers: number;
  readonly #log;
  #running: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.queue = options.queue ?? new WorkQueue();
    this.#reconcile = options.reconcile;
    this.#metrics = options.metrics;
    this.#workers = options.workers ?? 2;
    this.#log = logger(`controller.${options.name}`);
  }

  enqueue(key: string): void {
    this.queue.add(key);
    this.#metrics.queueDepth.set({ name: this.name }, this.queue.depth);
  }

  start(): void {
    for (let i = 0; i < this.#workers; i++) this.#running.push(this.#work());
  }

  /** Stops taking keys and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.#running);
    this.#running = [];
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.#metrics.queueDepth.set({ name: this.name }, this.queue.depth);
      await this.processKey(key);
    }
  }

  /** Exposed for tests: runs one reconcile of a key the worker took from the queue. */
  async processKey(key: string): Promise<void> {
    const stopTimer = this.#metrics.reconcileSeconds.startTimer({ controller: this.name });
    try {
      const result = await this.#reconcile(key);
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined) {
        this.queue.addAfter(key, result.requeueAfterMs);
        this.#metrics.reconcileTotal.inc({ controller: this.name, result: "requeue_after" });
      } else {
        this.#metrics.reconcileTotal.inc({ controller: this.name, result: "success" });
      }
    } catch (error) {
      const delay = this.queue.addRateLimited(key);
      this.#metrics.reconcileTotal.inc({ controller: this.name, result: "error" });
      if (isConflict(error)) {
        this.#log.info({ key, delay }, "conflict, will retry");
      } else {
        this.#metrics.reconcileErrors.inc({ controller: this.name });
        this.#log.error({ key, delay, err: error }, "reconcile failed");
      }
    } finally {
      stopTimer();
      this.queue.done(key);
    }
  }
}
