import { InvalidItemError } from "../base/errors.ts";

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/**
 * The sandbox image of one item (spec.environment.image): the template filled from the row's top-level fields, or
 * without a template the row's `image_name` (SWE-smith, SWE-Gym, SWE-rebench rows carry one). Undefined means the
 * pool's image. A placeholder the row cannot fill (missing, or not a string or number) makes the item invalid.
 */
export function itemImage(template: string | undefined, row: unknown): string | undefined {
  const fields = typeof row === "object" && row !== null ? (row as Record<string, unknown>) : {};
  if (template === undefined) {
    const named = fields["image_name"];
    return typeof named === "string" && named !== "" ? named : undefined;
  }
  return template.replace(PLACEHOLDER, (_placeholder, field: string) => {
    const value = fields[field];
    if (typeof value === "string" || typeof value === "number") return String(value);
    throw new InvalidItemError(`spec.environment.image: the row has no text field ${field} for {{${field}}}`);
  });
}

/** How many of a job's first rows its image histogram (pre-warm) is read from. */
export const PREWARM_ROWS = 256;

/**
 * Items per image over `rows` (a job's image histogram, to pre-warm the pool): rows on the pool's image, and rows the
 * template cannot fill (they fail as items later), are left out.
 */
export function imageHistogram(template: string | undefined, rows: Iterable<unknown>): Map<string, number> {
  const histogram = new Map<string, number>();
  for (const row of rows) {
    let image: string | undefined;
    try {
      image = itemImage(template, row);
    } catch (error) {
      if (error instanceof InvalidItemError) continue;
      throw error;
    }
    if (image !== undefined) histogram.set(image, (histogram.get(image) ?? 0) + 1);
  }
  return histogram;
}
