import { ConflictError, InvalidError, NotFoundError, ResourceExhaustedError } from "modal";
import { ClientError, Status } from "nice-grpc";
import { errorMessage, SandboxError, type SandboxErrorKind } from "../../base/errors.ts";

/**
 * The one place Modal failures become SandboxError kinds (modal-sdk.md section 8). The SDK maps a few gRPC
 * codes to its own classes and lets everything else through as a nice-grpc ClientError, after its own retries.
 */
const kindByStatus: Partial<Record<Status, SandboxErrorKind>> = {
  [Status.NOT_FOUND]: "gone",
  [Status.FAILED_PRECONDITION]: "gone",
  [Status.UNAVAILABLE]: "transient",
  [Status.DEADLINE_EXCEEDED]: "transient",
  [Status.CANCELLED]: "transient",
  [Status.INTERNAL]: "transient",
  [Status.UNKNOWN]: "transient",
  [Status.ABORTED]: "transient",
  [Status.RESOURCE_EXHAUSTED]: "capacity",
  [Status.UNAUTHENTICATED]: "configuration",
  [Status.PERMISSION_DENIED]: "configuration",
  [Status.INVALID_ARGUMENT]: "configuration",
  [Status.UNIMPLEMENTED]: "configuration",
  [Status.ALREADY_EXISTS]: "configuration",
};

export function modalErrorKind(error: unknown): SandboxErrorKind {
  if (error instanceof SandboxError) return error.kind;
  // ConflictError: the sandbox finished before it had a task; NotFoundError: no such sandbox (or app).
  if (error instanceof NotFoundError || error instanceof ConflictError) return "gone";
  if (error instanceof ResourceExhaustedError) return "capacity";
  if (error instanceof InvalidError) return "configuration";
  if (error instanceof ClientError) return kindByStatus[error.code] ?? "transient";
  // Missing credentials surface as a plain Error from the SDK's auth layer.
  if (error instanceof Error && /missing credentials|Invalid URL/i.test(error.message)) return "configuration";
  return "transient";
}

/** Wraps any failure of `operation` as a SandboxError (kept as is when it already is one). */
export function toSandboxError(error: unknown, operation: string): SandboxError {
  if (error instanceof SandboxError) return error;
  const detail = error instanceof ClientError ? `${Status[error.code]}: ${error.details}` : errorMessage(error);
  return new SandboxError(modalErrorKind(error), `modal ${operation}: ${detail}`, { cause: error });
}
