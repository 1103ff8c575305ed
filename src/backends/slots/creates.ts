/**
 * Sandbox creates running in the background, by name: the pool loop starts them without waiting, counts them for
 * the planner, and never starts a second create of a name that is still in flight.
 */
export class InFlightCreates {
  readonly #creating = new Map<string, Promise<void>>();

  get size(): number {
    return this.#creating.size;
  }

  /** Names in flight now; take this before listing the backend, so a create finishing meanwhile is counted once. */
  names(): string[] {
    return [...this.#creating.keys()];
  }

  /** The planner's in-flight input: creates from `before` whose sandbox the listing does not show yet. */
  unlisted(before: readonly string[], listed: readonly { name: string }[]): number {
    const names = new Set(listed.map((sandbox) => sandbox.name));
    return before.filter((name) => !names.has(name)).length;
  }

  /**
   * Starts `create` unless a create of `name` is in flight (then returns false). `settled` runs after it ends,
   * with its error if it failed; the create is no longer counted by then.
   */
  launch(name: string, create: () => Promise<void>, settled: (error: unknown) => void): boolean {
    if (this.#creating.has(name)) return false;
    const running = create().then(
      () => this.#finish(name, settled, undefined),
      (error: unknown) => this.#finish(name, settled, error ?? new Error("create failed")),
    );
    this.#creating.set(name, running);
    return true;
  }

  /** Resolves when every create in flight now has settled (errors are reported through `settled`). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#creating.values()]);
  }

  #finish(name: string, settled: (error: unknown) => void, error: unknown): void {
    this.#creating.delete(name);
    settled(error);
  }
}
