import { randomBytes } from "node:crypto";
import { logger } from "../../base/log.ts";
import type { SandboxBackend, SandboxHealth, SandboxInfo, SandboxPhase } from "../types.ts";
import { InFlightCreates } from "./creates.ts";
import { KeepAlive } from "./keepalive.ts";
import { planSandboxes } from "./plan.ts";
import type { SlotPool } from "./pool.ts";
import type { SlotPoolStats } from "./types.ts";
import { realClock, type Clock } from "../../base/clock.ts";

const log = logger("pool-manager");

export interface PoolManagerOptions {
  backend: SandboxBackend;
  slotPool: SlotPool;
  min: number;
  max: number;
  maxConcurrentCreates?: number;
  intervalMs?: number;
  /** Idle surplus goes only after this long without waiting acquirers. */
  scaleDownDelayMs?: number;
  clock?: Clock;
}

export type PoolManagerStats = SlotPoolStats & Record<`sandboxes${Capitalize<SandboxPhase>}`, number> & { creating: number };

/**
 * The embedded (no-cluster) pool loop: list the backend, sync the slot pool, run the planner, create and
 * terminate. The controller's SandboxPool reconciler does the same with the planner and a cluster-backed store.
 */
export class PoolManager {
  private readonly options: PoolManagerOptions;
  private readonly backend: SandboxBackend;
  private readonly slotPool: SlotPool;
  private readonly now: () => number;
  private readonly creating = new InFlightCreates();
  private readonly keepAlive = new KeepAlive();
  private observed: SandboxInfo[] = [];
  private lastWaiterAt: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** The isolation of the most recent sandbox checked; `message` says why it is off. */
  isolation: SandboxHealth | undefined;

  constructor(options: PoolManagerOptions) {
    this.options = options;
    this.backend = options.backend;
    this.slotPool = options.slotPool;
    const clock = options.clock ?? realClock;
    this.now = () => clock.now();
    this.lastWaiterAt = this.now();
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

  /** Runs one pass, or queues one more if a pass is running (so a burst of kicks costs one extra pass). */
  reconcile(): Promise<void> {
    // Stopped: an acquirer's kick must not create sandboxes that stop's terminateAll has already missed.
    if (this.stopped) return this.running ?? Promise.resolve();
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass()
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

  /** Stops the loop and waits for creates in flight; `terminateAll` also removes the pool's sandboxes. */
  async stop(terminateAll = false): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
    await this.creating.idle();
    if (terminateAll) {
      const infos = await this.backend.list(this.slotPool.template.pool);
      await Promise.allSettled(infos.map((info) => this.backend.terminate(info)));
    }
  }

  stats(): PoolManagerStats {
    const count = (phase: SandboxPhase): number => this.observed.filter((info) => info.phase === phase).length;
    return {
      ...this.slotPool.stats(),
      sandboxesStarting: count("starting"),
      sandboxesReady: count("ready"),
      sandboxesFailed: count("failed"),
      sandboxesTerminated: count("terminated"),
      creating: this.creating.size,
    };
  }

  private async pass(): Promise<void> {
    const template = this.slotPool.template;
    // Snapshot creates before listing: one that finishes meanwhile is then either listed or still counted.
    const creatingBefore = this.creating.names();
    this.observed = await this.backend.list(template.pool);
    this.keepAlive.probe(this.backend, this.observed, template.idleTimeoutSeconds, this.now());
    const inFlightCreates = this.creating.unlisted(creatingBefore, this.observed);
    this.slotPool.setSandboxes(this.observed);
    const waiting = this.slotPool.waiting();
    if (waiting > 0) this.lastWaiterAt = this.now();
    const plan = planSandboxes({
      observed: this.observed.map((info) => ({ ...info, leasedSlots: this.slotPool.leasedSlots(info.name) })),
      templateHash: template.templateHash,
      min: this.options.min,
      max: this.options.max,
      slotsPerSandbox: template.slots,
      waitingAcquirers: waiting,
      replace: this.slotPool.replacements(),
      inFlightCreates,
      maxConcurrentCreates: this.options.maxConcurrentCreates ?? 4,
      allowScaleDown: this.now() - this.lastWaiterAt >= (this.options.scaleDownDelayMs ?? 60_000),
      lifetimeSeconds: template.lifetimeSeconds,
      now: this.now(),
    });
    for (const { name, reason } of plan.terminate) {
      const info = this.observed.find((candidate) => candidate.name === name);
      if (info === undefined) continue;
      log.info({ sandbox: name, reason }, "terminating sandbox");
      await this.backend.terminate(info).catch((error: unknown) => log.warn({ err: error, sandbox: name }, "terminate failed"));
    }
    if (plan.terminate.length > 0) {
      this.observed = this.observed.filter((info) => !plan.terminate.some((entry) => entry.name === info.name));
      this.slotPool.setSandboxes(this.observed);
    }
    for (let index = 0; index < plan.create; index++) this.launch();
  }

  private launch(): void {
    const template = this.slotPool.template;
    const name = `${template.pool.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-+|-+$/g, "")}-${randomBytes(4).toString("hex")}`;
    this.creating.launch(
      name,
      async () => {
        const info = await this.backend.create(name, template);
        this.isolation = await this.backend.health(info);
        if (this.isolation.isolation === "none")
          log.warn({ sandbox: name, reason: this.isolation.message }, "sandbox runs slots without isolation");
        log.info({ sandbox: name, pool: template.pool }, "sandbox created");
      },
      (error) => {
        if (error !== undefined) log.error({ err: error, sandbox: name }, "sandbox create failed");
        if (!this.stopped) void this.reconcile();
      },
    );
  }
}
