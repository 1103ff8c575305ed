/** Marks ranges left out to keep the text within its bound. */
const TRUNCATED = ",...";

/**
 * Item indexes as compact ranges, like batch/v1 Job's completedIndexes: [0..99, 105] → "0-99,105". Longer than
 * `maxLength`, it keeps the first ranges that fit and ends in ",...".
 */
export function compactRanges(indexes: Iterable<number>, maxLength = Infinity): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  let text = "";
  for (let i = 0; i < sorted.length; ) {
    const start = sorted[i]!;
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1] === end + 1) end = sorted[++i]!;
    const part = `${text === "" ? "" : ","}${start === end ? start : `${start}-${end}`}`;
    i++;
    const more = i < sorted.length;
    if (text.length + part.length + (more ? TRUNCATED.length : 0) > maxLength) return `${text}${TRUNCATED}`;
    text += part;
  }
  return text;
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
