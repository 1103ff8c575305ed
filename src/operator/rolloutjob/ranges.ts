/** Marks ranges left out to keep the text within its bound. */
const TRUNCATED = ",...";

/**
 * Item indexes as compact ranges, like batch/v1 Job's completedIndexes: [0..99, 105] → "0-99,105". Longer than
 * `maxLength`, it keeps the first ranges that fit and ends in ",...".
 */
export function compactRanges(indexes: Iterable<number>, maxLength = Infinity): string {
  return compactSortedRanges(
    [...new Set(indexes)].sort((a, b) => a - b),
    maxLength,
  );
}

/** `compactRanges` of indexes already ascending and unique (a walk over a done-bitmap): no copy, no sort. */
export function compactSortedRanges(ascending: Iterable<number>, maxLength = Infinity): string {
  let text = "";
  let start: number | undefined;
  let end = 0;
  const part = () => `${text === "" ? "" : ","}${start === end ? start : `${start}-${end}`}`;
  for (const index of ascending) {
    if (start !== undefined && index === end + 1) {
      end = index;
      continue;
    }
    if (start !== undefined) {
      // Another range follows this one, so the text must keep room for the marker.
      const next = part();
      if (text.length + next.length + TRUNCATED.length > maxLength) return `${text}${TRUNCATED}`;
      text += next;
    }
    start = index;
    end = index;
  }
  if (start === undefined) return text;
  const last = part();
  return text.length + last.length > maxLength ? `${text}${TRUNCATED}` : text + last;
}

/** The indexes `compactRanges` wrote (only the ranges it kept, when it ended in ",..."). */
export function parseRanges(text: string): number[] {
  const kept = text.endsWith(TRUNCATED) ? text.slice(0, -TRUNCATED.length) : text;
  if (kept.trim() === "") return [];
  return kept.split(",").flatMap((part) => {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || Number.isNaN(a)) throw new Error(`bad range ${part}`);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, k) => a + k);
  });
}
