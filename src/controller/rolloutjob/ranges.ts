/** Item indexes as compact ranges, like batch/v1 Job's completedIndexes: [0..99, 105] → "0-99,105". */
export function compactRanges(indexes: Iterable<number>): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    const start = sorted[i]!;
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1] === end + 1) end = sorted[++i]!;
    parts.push(start === end ? String(start) : `${start}-${end}`);
    i++;
  }
  return parts.join(",");
}

export function parseRanges(text: string): number[] {
  if (text.trim() === "") return [];
  return text.split(",").flatMap((part) => {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || Number.isNaN(a)) throw new Error(`bad range ${part}`);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, k) => a + k);
  });
}
