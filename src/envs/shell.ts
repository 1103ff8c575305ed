/** Small pure helpers for building slot commands. */

/** Quotes one word for bash (single quotes; a single quote becomes '\''). */
export function shellQuote(word: string): string {
  if (/^[\w@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The last `maxChars` characters, marked when cut: details stay bounded whatever a command prints. */
export function tail(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `[...${text.length - maxChars} chars cut]${text.slice(-maxChars)}`;
}

/** Splits a list into chunks of at most `size` entries (size >= 1). */
export function chunk<T>(values: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`chunk size must be a positive integer, got ${size}`);
  const chunks: T[][] = [];
  for (let start = 0; start < values.length; start += size) chunks.push(values.slice(start, start + size));
  return chunks;
}
