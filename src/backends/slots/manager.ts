import { randomBytes } from "node:crypto";
import { logger } from "../../base/log.ts";
import type { SandboxBackend, SandboxHealth, SandboxPhase, SandboxTemplate } from "../types.ts";
import { PoolLoop, type PoolStepHooks } from "./loop.ts";
import type { SlotPool } from "./pool.ts";
import type { SlotPoolStats } from "./types.ts";
import { realClock, type Clock } from "../../base/clock.ts";

const log = logger("pool-manager");

export interface PoolManagerOptions {
  backend: SandboxBackend;
  slotPool: SlotPool;
  min: number;
  max: number;
  /** Sandboxes kept warm for each image used recently (spec.minSandboxesPerImage). */
  minPerImage?: number;
  maxConcurrentCreates?: number;
  intervalMs?: number;
  /** Idle surplus goes only after this long without waiting acquirers. */
  scaleDownDelayMs?: number;
  clock?: Clock;
}

export type PoolManagerStats = SlotPoolStats & Record<`sandboxes${Capitalize<SandboxPhase>}`, number> & { creating: number };

/** A sandbox name from the pool's name: DNS-safe on every backend. */
const sandboxName = (template: SandboxTemplate) =>
  `${template.pool.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-+|-+$/g, "")}-${randomBytes(4).toString("hex")}`;

/**
 * The embedded (no-cluster) pool: the PoolLoop stepped on a timer and whenever an acquirer has to wait, one step at
 * a time. The controller's SandboxPool reconciler steps the same loop once per reconcile.
 */
export class PoolManager {
  private readonly options: PoolManagerOptions;
  private readonly slotPool: SlotPool;
  private readonly now: () => number;
  private readonly loop: PoolLoop;
  private readonly hooks: PoolStepHooks;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** The isolation of the most recent sandbox checked; `message` says why it is off. */
  isolation: SandboxHealth | undefined;

  constructor(options: PoolManagerOptions) {
    this.options = options;
    this.slotPool = options.slotPool;
    const clock = options.clock ?? realClock;
    this.now = () => clock.now();
    this.loop = new PoolLoop({
      backend: options.backend,
      slotPool: options.slotPool,
      scaleDownDelayMs: options.scaleDownDelayMs ?? 60_000,
    });
    this.hooks = {
      sandboxName,
      created: async (info) => {
        this.isolation = await options.backend.health(info);
        if (this.isolation.isolation === "none")
          log.warn({ sandbox: info.name, reason: this.isolation.message }, "sandbox runs slots without isolation");
      },
      createSettled: () => {
        if (!this.stopped) void this.reconcile();
      },
    };
    this.slotPool.onWaiting = () => void this.reconcile();
  }

  start(): void {
    this.stopped = false;
    const loop = (): void => {
      this.timer = setTimeout(() => void this.reconcile().finally(() => !this.stopped && loop()), this.options.intervalMs ?? 1000);
      this.timer.unref();
    };
    void this.reconcile().finally(loop);
  }

  /** Runs one step, or queues one more if a step is running (so a burst of kicks costs one extra step). */
  reconcile(): Promise<void> {
    // Stopped: an acquirer's kick must not create sandboxes that stop's terminateAll has already missed.
    if (this.stopped) return this.running ?? Promise.resolve();
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    const { min, max, minPerImage = 0 } = this.options;
    this.running = this.loop
      .step({ min, max, minPerImage, maxConcurrentCreates: this.options.maxConcurrentCreates ?? 4, now: this.now() }, this.hooks)
      .then(() => undefined)
      .catch((error: unknown) => log.error({ err: error, pool: this.slotPool.template.pool }, "reconcile failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.reconcile();
        }
      });
    return this.running;
  }

  /**
   * Stops the loop and ends creates in flight (a sandbox still starting is not waited for); `terminateAll` also
   * removes the pool's sandboxes, those creates left included.
   */
  async stop(terminateAll = false): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.loop.abortCreates();
    await this.running;
    await this.loop.idle();
    if (terminateAll) await this.loop.terminateAll();
  }

  /** Why the pool has no new sandboxes: the last create's failure and its backoff (the Ready condition's reason). */
  get createError(): string | undefined {
    return this.loop.createError;
  }

  stats(): PoolManagerStats {
    const count = (phase: SandboxPhase): number => this.loop.observed.filter((info) => info.phase === phase).length;
    return {
      ...this.slotPool.stats(),
      sandboxesStarting: count("starting"),
      sandboxesReady: count("ready"),
      sandboxesFailed: count("failed"),
      sandboxesTerminated: count("terminated"),
      creating: this.loop.creating,
    };
  }
}
