import type { Informer, KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { logger } from "../../base/log.ts";
import { realClock, type Clock } from "../../base/clock.ts";

export type SourceInformer<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export interface SupervisorOptions<T extends KubernetesObject> {
  /** Resource name for logs and metrics. */
  resource: string;
  informer: SourceInformer<T>;
  /** Called for every add, update, delete and resync: events are triggers, reconciles read the cache. */
  onChange: (obj: T, event: "add" | "update" | "delete" | "resync") => void;
  resyncMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  onRestart?: () => void;
  clock?: Clock;
  random?: () => number;
}

/**
 * Keeps a client-node informer watching. client-node emits `error` and stops on anything but a 410 or a client
 * timeout (javascript#958, #1496), so the supervisor restarts it with jittered exponential backoff (1 s to 30 s,
 * reset after a healthy connect, avoiding the tight restart loop of javascript#1933) and periodically re-enqueues
 * every cached object so a missed event cannot leave an object unreconciled.
 */
export class SupervisedInformer<T extends KubernetesObject> {
  readonly #options: Required<Omit<SupervisorOptions<T>, "onRestart">> & Pick<SupervisorOptions<T>, "onRestart">;
  readonly #log;
  #failures = 0;
  #restartTimer: unknown;
  #resyncTimer: unknown;
  #stopped = false;
  #synced = false;

  constructor(options: SupervisorOptions<T>) {
    this.#options = {
      ...options,
      resyncMs: options.resyncMs ?? 300_000,
      minBackoffMs: options.minBackoffMs ?? 1000,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
      clock: options.clock ?? realClock,
      random: options.random ?? Math.random,
    };
    this.#log = logger("informer").child({ resource: options.resource });
    const { informer, onChange } = this.#options;
    informer.on("add", (obj) => onChange(obj, "add"));
    informer.on("update", (obj) => onChange(obj, "update"));
    informer.on("delete", (obj) => onChange(obj, "delete"));
    informer.on("connect", () => {
      this.#failures = 0;
    });
    informer.on("error", (error) => this.#onError(error));
  }

  get synced(): boolean {
    return this.#synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#options.informer.get(name, namespace);
  }

  list(namespace?: string): ReadonlyArray<T> {
    return this.#options.informer.list(namespace);
  }

  /** Resolves after the initial list; retries the list until it works or the supervisor stops. */
  async start(): Promise<void> {
    for (;;) {
      try {
        await this.#options.informer.start();
        break;
      } catch (error) {
        if (this.#stopped) return;
        const delay = this.#nextBackoff();
        this.#log.warn({ err: error, delay }, "initial list failed, retrying");
        await new Promise<void>((resolve) => this.#options.clock.setTimeout(resolve, delay));
        if (this.#stopped) return;
      }
    }
    this.#synced = true;
    this.#scheduleResync();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#options.clock.clearTimeout(this.#restartTimer);
    this.#options.clock.clearTimeout(this.#resyncTimer);
    await this.#options.informer.stop();
  }

  #nextBackoff(): number {
    const { minBackoffMs, maxBackoffMs, random } = this.#options;
    const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** this.#failures);
    this.#failures++;
    // Full jitter in [base/2, base): replicas that lost the same apiserver do not retry in lockstep.
    return Math.round(base / 2 + (random() * base) / 2);
  }

  #onError(error: unknown): void {
    if (this.#stopped) return;
    const delay = this.#nextBackoff();
    this.#log.warn({ err: error, delay }, "watch stopped, restarting");
    this.#options.clock.clearTimeout(this.#restartTimer);
    this.#restartTimer = this.#options.clock.setTimeout(() => {
      if (this.#stopped) return;
      this.#options.onRestart?.();
      this.#options.informer.start().catch((err: unknown) => this.#onError(err));
    }, delay);
  }

  #scheduleResync(): void {
    this.#resyncTimer = this.#options.clock.setTimeout(() => {
      if (this.#stopped) return;
      for (const obj of this.#options.informer.list()) this.#options.onChange(obj, "resync");
      this.#scheduleResync();
    }, this.#options.resyncMs);
  }
}
