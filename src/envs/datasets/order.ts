/**
 * Deterministic ordering of item streams. Pure.
 * - `permute`: an exact seeded Fisher–Yates shuffle, for rows already in memory (inline, ConfigMap).
 * - `shuffleBuffer`: for streams (JSONL, parquet): keeps at most `size` rows; each arriving row swaps with a seeded
 *   random slot and the evicted row is emitted, then the rest drains in seeded order (as HF datasets'
 *   IterableDataset.shuffle does). Memory is bounded by `size`; a row moves at most ~`size` places from where a
 *   full shuffle could put it, so sources also permute their shards (row groups) with the same seed.
 * Same seed + same input order → same output order, on every machine.
 */

/** mulberry32: a tiny, well-distributed 32-bit PRNG; deterministic by seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function permute<T>(values: readonly T[], seed: number): T[] {
  const random = seededRandom(seed);
  const result = [...values];
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [result[i], result[j]] = [result[j] as T, result[i] as T];
  }
  return result;
}

export async function* shuffleBuffer<T>(rows: AsyncIterable<T>, seed: number, size: number): AsyncGenerator<T> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`shuffle buffer size must be a positive integer, got ${size}`);
  const random = seededRandom(seed);
  const buffer: T[] = [];
  for await (const row of rows) {
    if (buffer.length < size) {
      buffer.push(row);
      continue;
    }
    const slot = Math.floor(random() * size);
    const evicted = buffer[slot] as T;
    buffer[slot] = row;
    yield evicted;
  }
  yield* permute(buffer, Math.floor(random() * 4294967296));
}

export async function* filter<T>(rows: AsyncIterable<T>, keep: (row: T) => boolean): AsyncGenerator<T> {
  for await (const row of rows) if (keep(row)) yield row;
}

export async function* take<T>(rows: AsyncIterable<T>, limit: number | undefined): AsyncGenerator<T> {
  if (limit === undefined) return yield* rows;
  if (limit <= 0) return;
  let count = 0;
  for await (const row of rows) {
    yield row;
    if (++count >= limit) return;
  }
}
