/** First wait after a failed create, and the cap it doubles up to. */
export const CREATE_BACKOFF_BASE_MS = 1_000;
export const CREATE_BACKOFF_MAX_MS = 60_000;

/**
 * Per-pool backoff of sandbox creates: a backend that refuses every create (Nomad rejecting the job, a quota, a
 * bad image) must not be asked again at once, or the pool hammers it with creates its own settle hook triggers.
 * Each round of failures doubles the wait (capped), jittered down to half so pools sharing a backend spread out;
 * a successful create resets it. Time is passed in: the pool loop records failures and applies them at its next
 * step, with that step's `now`.
 */
export class CreateBackoff {
  readonly #random: () => number;
  /** Consecutive rounds of failures. */
  #rounds = 0;
  #failedSinceStep = false;
  #retryAt = 0;
  #waitMs = 0;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  failed(): void {
    this.#failedSinceStep = true;
  }

  succeeded(): void {
    this.#rounds = 0;
    this.#failedSinceStep = false;
    this.#retryAt = 0;
    this.#waitMs = 0;
  }

  /** Called once per step: turns failures heard since the last step into the next wait, counted from `now`. */
  observe(now: number): void {
    if (!this.#failedSinceStep) return;
    this.#failedSinceStep = false;
    const ceiling = Math.min(CREATE_BACKOFF_MAX_MS, CREATE_BACKOFF_BASE_MS * 2 ** this.#rounds);
    this.#rounds++;
    this.#waitMs = Math.round(ceiling * (0.5 + this.#random() / 2));
    this.#retryAt = now + this.#waitMs;
  }

  /** Whether creates must wait at `now`. */
  blocked(now: number): boolean {
    return now < this.#retryAt;
  }

  /** After a failure, one create probes the backend before the pool creates at full width again. */
  get probing(): boolean {
    return this.#rounds > 0;
  }

  /** The wait chosen after the last round of failures (0 when none). */
  get waitMs(): number {
    return this.#waitMs;
  }
}
