import { SandboxError } from "../../base/errors.ts";
import type { Lease } from "./types.ts";
import type { ImageWaiters } from "./plan.ts";

/** An acquire waiting for a free slot on a sandbox of its image. */
export interface Waiter {
  holder: string;
  image: string;
  group: string | undefined;
  startedAt: number;
  resolve: (lease: Lease) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

export type WaitOutcome = "timeout" | "aborted";

/** The acquires waiting in a pool, in arrival order; each leaves on its timeout or abort, or when served. */
export class WaitQueue {
  readonly #waiters: Waiter[] = [];
  readonly #onGiveUp: (waiter: Waiter, outcome: WaitOutcome) => void;

  /** `onGiveUp` hears a waiter that left on its timeout or abort (for the acquire latency histogram). */
  constructor(onGiveUp: (waiter: Waiter, outcome: WaitOutcome) => void) {
    this.#onGiveUp = onGiveUp;
  }

  get length(): number {
    return this.#waiters.length;
  }

  /** Whether an acquire for `image` already waits: a new one queues behind it rather than overtake it. */
  has(image: string): boolean {
    return this.#waiters.some((waiter) => waiter.image === image);
  }

  /** Queues an acquire until it is served (`take`), times out, or its signal aborts. */
  wait(
    request: Pick<Waiter, "holder" | "image" | "group" | "startedAt">,
    options: { timeoutMs: number; signal?: AbortSignal; timeoutError: SandboxError },
  ): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      const onAbort = (): void => this.#giveUp(waiter, options.signal?.reason, "aborted");
      const timer = setTimeout(() => this.#giveUp(waiter, options.timeoutError, "timeout"), options.timeoutMs);
      const waiter: Waiter = {
        ...request,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
        },
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Waiters in the order they are served: the holder (job) leasing the fewest slots first, the oldest among equals. */
  inServiceOrder(leasedByHolder: ReadonlyMap<string, number>): Waiter[] {
    return this.#waiters
      .map((waiter, index) => ({ waiter, index, leased: leasedByHolder.get(waiter.holder) ?? 0 }))
      .sort((a, b) => a.leased - b.leased || a.index - b.index)
      .map(({ waiter }) => waiter);
  }

  /** Takes a waiter out of the queue to be served. */
  take(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index >= 0) this.#waiters.splice(index, 1);
    waiter.cleanup();
  }

  /** Waiting acquirers by image, with when the oldest of each began to wait (the planner's fairness). */
  byImage(): Map<string, ImageWaiters> {
    const byImage = new Map<string, ImageWaiters>();
    for (const waiter of this.#waiters) {
      const entry = byImage.get(waiter.image);
      if (entry === undefined) byImage.set(waiter.image, { count: 1, since: waiter.startedAt });
      else entry.count++;
    }
    return byImage;
  }

  /** Fails every waiter (the pool closes). */
  rejectAll(error: unknown): void {
    for (const waiter of this.#waiters.splice(0)) {
      waiter.cleanup();
      waiter.reject(error);
    }
  }

  #giveUp(waiter: Waiter, reason: unknown, outcome: WaitOutcome): void {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return;
    this.#waiters.splice(index, 1);
    waiter.cleanup();
    this.#onGiveUp(waiter, outcome);
    waiter.reject(reason);
  }
}
