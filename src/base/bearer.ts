import { createHash, timingSafeEqual } from "node:crypto";

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();

/**
 * Whether an `Authorization` header is exactly `Bearer <token>`. Both sides are hashed first, so the comparison takes
 * the same time whatever the header holds: neither a wrong prefix nor a wrong length answers faster.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  return timingSafeEqual(digest(header ?? ""), digest(`Bearer ${token}`));
}
