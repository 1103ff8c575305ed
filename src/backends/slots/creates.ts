/**
 * Sandbox creates running in the background, by name: the pool loop starts them without waiting, counts them for
 * the planner, and never starts a second create of a name that is still in flight.
 */
export class InFlightCreates {
  readonly #creating = new Map<string, { running: Promise<void>; image: string }>();

  get size(): number {
    return this.#creating.size;
  }

  /** Creates in flight now, name to image; take this before listing the backend, so a create finishing meanwhile is counted once. */
  names(): Map<string, string> {
    return new Map([...this.#creating].map(([name, create]) => [name, create.image]));
  }

  /** The planner's in-flight input: creates from `before` whose sandbox the listing does not show yet, by image. */
  unlisted(before: ReadonlyMap<string, string>, listed: readonly { name: string }[]): Map<string, number> {
    const names = new Set(listed.map((sandbox) => sandbox.name));
    const byImage = new Map<string, number>();
    for (const [name, image] of before) if (!names.has(name)) byImage.set(image, (byImage.get(image) ?? 0) + 1);
    return byImage;
  }

  /**
   * Starts `create` unless a create of `name` is in flight (then returns false). `settled` runs after it ends,
   * with its error if it failed; the create is no longer counted by then.
   */
  launch(name: string, image: string, create: () => Promise<void>, settled: (error: unknown) => void): boolean {
    if (this.#creating.has(name)) return false;
    const running = create().then(
      () => this.#finish(name, settled, undefined),
      (error: unknown) => this.#finish(name, settled, error ?? new Error("create failed")),
    );
    this.#creating.set(name, { running, image });
    return true;
  }

  /** Resolves when every create in flight now has settled (errors are reported through `settled`). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#creating.values()].map((create) => create.running));
  }

  #finish(name: string, settled: (error: unknown) => void, error: unknown): void {
    this.#creating.delete(name);
    settled(error);
  }
}
