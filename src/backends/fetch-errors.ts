import { errorMessage, SandboxError, type SandboxErrorKind } from "../base/errors.ts";

/** Every error code (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT, UND_ERR_SOCKET, ...) in a fetch failure's causes. */
function errorCodes(error: unknown, depth = 0): string[] {
  if (depth > 4 || typeof error !== "object" || error === null) return [];
  const record = error as { code?: unknown; cause?: unknown; errors?: unknown };
  const own = typeof record.code === "string" && record.code.length > 0 ? [record.code] : [];
  const inner = Array.isArray(record.errors) ? record.errors.flatMap((e: unknown) => errorCodes(e, depth + 1)) : [];
  return [...own, ...inner, ...errorCodes(record.cause, depth + 1)];
}

/**
 * A request that got no HTTP answer, as a SandboxError: timeouts are transient; otherwise the first rule whose
 * pattern matches a code in the cause chain decides the kind, and transient is the default.
 */
export function classifyFetchFailure(
  error: unknown,
  what: string,
  rules: readonly { kind: SandboxErrorKind; codes: RegExp }[],
): SandboxError {
  if (error instanceof SandboxError) return error;
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return new SandboxError("transient", `${what}: timed out`, { cause: error });
  }
  const codes = errorCodes(error);
  for (const rule of rules) {
    const code = codes.find((c) => rule.codes.test(c));
    if (code !== undefined) return new SandboxError(rule.kind, `${what}: ${code}`, { cause: error });
  }
  const reason = codes.length > 0 ? codes.join("/") : errorMessage(error);
  return new SandboxError("transient", `${what}: ${reason}`, { cause: error });
}
