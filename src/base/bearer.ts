import { hash, timingSafeEqual } from "node:crypto";

const digest = (text: string): Buffer => hash("sha256", text, "buffer");

/**
 * A check that an `Authorization` header is exactly `Bearer <token>`. Both sides are hashed first, so the comparison
 * takes the same time whatever the header holds: neither a wrong prefix nor a wrong length answers faster. The
 * token's own digest is computed once here, not on every request (the runners' API checks two per slot lease).
 */
export function bearerCheck(token: string): (header: string | undefined) => boolean {
  const expected = digest(`Bearer ${token}`);
  return (header) => timingSafeEqual(digest(header ?? ""), expected);
}
