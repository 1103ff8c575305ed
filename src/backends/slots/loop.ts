import { describeError } from "../../base/errors.ts";
import { logger } from "../../base/log.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../types.ts";
import { CreateBackoff } from "./backoff.ts";
import { InFlightCreates } from "./creates.ts";
import { KeepAlive } from "./keepalive.ts";
import { planSandboxes, type PlanOutput, type TerminateReason } from "./plan.ts";
import type { SlotPool } from "./pool.ts";

const log = logger("pool-loop");

export interface PoolLoopOptions {
  backend: SandboxBackend;
  slotPool: SlotPool;
  /** Idle surplus goes only after this long without waiting acquirers; 0: as soon as none waits. */
  scaleDownDelayMs: number;
  /**
   * A failed terminate ends the step there: nothing more is terminated or created, and the step's result carries
   * the error (the operator reports it in status and retries on the next reconcile). Otherwise it is logged and
   * the step goes on.
   */
  haltOnTerminateFailure?: boolean;
  /** The backoff's jitter source, in [0, 1); tests pin it. */
  random?: () => number;
}

/** What one step is told: the pool's bounds now (a changed spec moves them) and the time. */
export interface PoolStepInput {
  min: number;
  max: number;
  /** Sandboxes kept warm for each image used recently (spec.minSandboxesPerImage); default 0. */
  minPerImage?: number;
  maxConcurrentCreates: number;
  now: number;
}

/** How the caller names the sandboxes a step creates and hears what became of them. */
export interface PoolStepHooks {
  sandboxName(template: SandboxTemplate): string;
  terminated?(sandbox: SandboxInfo, reason: TerminateReason): void;
  /** Runs as part of the create, so the create still counts as in flight meanwhile (a health check of the new sandbox). */
  created?(info: SandboxInfo): Promise<void> | void;
  /** `message` is also kept as the loop's `createError` until a create succeeds. */
  createFailed?(name: string, message: string): void;
  /** A create ended, either way: another step should observe it. */
  createSettled(): void;
}

export interface PoolStepResult {
  /** The listing, less what the step terminated (all of it when the step halted). */
  sandboxes: SandboxInfo[];
  plan: PlanOutput;
  /** The terminate failure a step with `haltOnTerminateFailure` stopped at. */
  halted?: unknown;
}

/**
 * The one pool loop, one step at a time: list the backend, keep ready sandboxes alive, sync the slot pool, plan
 * (pure, with the time passed in), terminate, then start creates in the background. The embedded PoolManager runs
 * steps on a timer; the SandboxPool reconciler runs one per reconcile and turns its result into status and Events.
 */
export class PoolLoop {
  readonly #backend: SandboxBackend;
  readonly #slotPool: SlotPool;
  readonly #options: PoolLoopOptions;
  readonly #creates = new InFlightCreates();
  readonly #keepAlive = new KeepAlive();
  readonly #backoff: CreateBackoff;
  /** Aborted by `abortCreates`: creates still waiting for their sandbox give up. */
  readonly #stopping = new AbortController();
  #lastWaiterAt: number | undefined;
  #createFailure: string | undefined;
  /** The last step's view of the pool's sandboxes. */
  observed: SandboxInfo[] = [];

  constructor(options: PoolLoopOptions) {
    this.#backend = options.backend;
    this.#slotPool = options.slotPool;
    this.#options = options;
    this.#backoff = new CreateBackoff(options.random);
  }

  /** The last create's failure (`create failed: …`) and the backoff it caused, until a create succeeds. */
  get createError(): string | undefined {
    if (this.#createFailure === undefined) return undefined;
    const waitMs = this.#backoff.waitMs;
    return waitMs > 0 ? `${this.#createFailure} (creates back off ${Math.ceil(waitMs / 1000)} s)` : this.#createFailure;
  }

  /** Creates running in the background. */
  get creating(): number {
    return this.#creates.size;
  }

  /** Tells creates in flight to stop waiting for their sandboxes (the pool is stopping); `terminateAll` sweeps what they left. */
  abortCreates(): void {
    this.#stopping.abort(new Error("pool stopping"));
  }

  /** Resolves when every create in flight now has ended. */
  idle(): Promise<void> {
    return this.#creates.idle();
  }

  async step(input: PoolStepInput, hooks: PoolStepHooks): Promise<PoolStepResult> {
    const template = this.#slotPool.template;
    this.#backoff.observe(input.now);
    // Backing off: no creates; after that, one create at a time until one succeeds.
    const maxConcurrentCreates = this.#backoff.blocked(input.now)
      ? 0
      : this.#backoff.probing
        ? Math.min(1, input.maxConcurrentCreates)
        : input.maxConcurrentCreates;
    // Snapshot creates before listing: one that finishes meanwhile is then either listed or still counted.
    const creatingBefore = this.#creates.names();
    const listed = await this.#backend.list(template.pool);
    this.observed = listed;
    this.#keepAlive.probe(this.#backend, listed, template.idleTimeoutSeconds, input.now);
    this.#slotPool.setSandboxes(listed);
    const waiting = this.#slotPool.waiting();
    if (waiting > 0 || this.#lastWaiterAt === undefined) this.#lastWaiterAt = input.now;
    const inFlightByImage = this.#creates.unlisted(creatingBefore, listed);
    const plan = planSandboxes({
      observed: listed.map((info) => ({
        ...info,
        image: this.#slotPool.imageOf(info),
        leasedSlots: this.#slotPool.leasedSlots(info.name),
      })),
      templateHash: template.templateHash,
      image: template.image,
      templateHashOf: (image) => this.#slotPool.templateFor(image).templateHash,
      min: input.min,
      max: input.max,
      slotsPerSandbox: template.slots,
      waitingAcquirers: waiting,
      waitingByImage: this.#slotPool.waitingByImage(),
      replace: this.#slotPool.replacements(),
      inFlightCreates: [...inFlightByImage.values()].reduce((total, count) => total + count, 0),
      inFlightByImage,
      warmImages: this.#slotPool.images.warm(input.minPerImage ?? 0),
      maxConcurrentCreates,
      allowScaleDown: input.now - this.#lastWaiterAt >= this.#options.scaleDownDelayMs,
      lifetimeSeconds: template.lifetimeSeconds,
      now: input.now,
    });
    for (const { name, reason } of plan.terminate) {
      const sandbox = listed.find((candidate) => candidate.name === name);
      if (sandbox === undefined) continue;
      log.info({ sandbox: name, reason }, "terminating sandbox");
      try {
        await this.#backend.terminate(sandbox);
        hooks.terminated?.(sandbox, reason);
      } catch (error) {
        if (this.#options.haltOnTerminateFailure) return { sandboxes: listed, plan, halted: error };
        log.warn({ err: error, sandbox: name }, "terminate failed");
      }
    }
    if (plan.terminate.length > 0) {
      this.observed = listed.filter((info) => !plan.terminate.some((entry) => entry.name === info.name));
      this.#slotPool.setSandboxes(this.observed);
    }
    this.#slotPool.setEvicting(plan.evicting);
    for (const image of plan.creates) this.#launch(this.#slotPool.templateFor(image), hooks);
    return { sandboxes: this.observed, plan };
  }

  /** Terminates every live sandbox of the pool (call it once no create is in flight): how many, and what failed. */
  async terminateAll(): Promise<{ terminated: number; failures: unknown[] }> {
    const live = (await this.#backend.list(this.#slotPool.template.pool)).filter((info) => info.phase !== "terminated");
    const results = await Promise.allSettled(live.map((info) => this.#backend.terminate(info)));
    const failures = results.flatMap((result) => (result.status === "rejected" ? [result.reason] : []));
    return { terminated: live.length, failures };
  }

  #launch(template: SandboxTemplate, hooks: PoolStepHooks): void {
    const name = hooks.sandboxName(template);
    this.#creates.launch(
      name,
      template.image,
      async () => {
        const info = await this.#backend.create(name, template, { signal: this.#stopping.signal });
        await hooks.created?.(info);
        log.info({ sandbox: name, pool: template.pool }, "sandbox created");
      },
      (error) => {
        if (error === undefined) {
          this.#createFailure = undefined;
          this.#backoff.succeeded();
        } else {
          log.error({ err: error, sandbox: name }, "sandbox create failed");
          this.#createFailure = `create failed: ${describeError(error)}`;
          this.#backoff.failed();
          hooks.createFailed?.(name, this.#createFailure);
        }
        hooks.createSettled();
      },
    );
  }
}
