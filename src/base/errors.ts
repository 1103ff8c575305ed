/**
 * The error catalogue (as fastify's `FST_ERR_*`): every error the project raises on purpose carries one of these
 * stable codes, so logs, HTTP answers and conditions can be matched on the code instead of the message. A code is
 * never renamed or reused for another meaning; retire it instead. `status` is set where the code is an HTTP answer
 * of its own (the error's `statusCode`); sandbox errors have none: each server maps their kinds to its own statuses.
 */
export const ERROR_CODES = {
  HR_INTERNAL: { meaning: "an unexpected error that has no code of its own (a bug, or a failure nobody classified)" },

  HR_SANDBOX_GONE: { meaning: "the sandbox (or the slot lease on it) no longer exists: it is replaced, the work goes to another slot" },
  HR_SANDBOX_TRANSIENT: { meaning: "a sandbox call failed in a way that may pass: timeout, connection reset, 5xx" },
  HR_SANDBOX_CAPACITY: { meaning: "the backend or the sandbox is out of room (quota, disk, 429): wait, then retry" },
  HR_SANDBOX_CONFIGURATION: { meaning: "the call can never work as configured (credentials, image, a path outside the slot): not retried" },
  HR_LEASE_LOST: { meaning: "the slot lease is not current: it expired, was released, or its sandbox went away", status: 410 },

  HR_INFRA_SETUP: { meaning: "the environment's setup failed for a reason that is not the agent's: retried on another slot" },
  HR_INFRA_VERIFY: { meaning: "the environment's verification broke (not a failing test): retried on another slot" },
  HR_INFRA_SANDBOX: { meaning: "the sandbox broke under a tool call: retried on another slot" },
  HR_INFRA_MODEL: { meaning: "the model endpoint was down or refused every request: retried, never scored" },
  HR_MODEL_REQUEST: { meaning: "the model endpoint answered, but not with a usable completion (e.g. context too long)" },
  HR_ITEM_INVALID: { meaning: "a dataset row the environment's item schema rejects: a data error, never retried" },
  HR_GROUP_FAILED: { meaning: "an item could not be scored: a data or configuration error, or its retries ran out" },
  HR_DATASET_UNREADABLE: { meaning: "the job's dataset could not be read: no source, a missing key or URL, a bad row" },
  HR_MANIFEST_INVALID: { meaning: "a RolloutJob or SandboxPool file for `hermes-rollouts run` is not valid" },
  HR_TRAINER_REJECTED: { meaning: "the Atropos trainer answered 4xx: sending the same body again cannot help" },
  HR_RUNNERS_API: { meaning: "the runners' API answered a runner with an error (status is the answer's)" },

  HR_BAD_REQUEST: { meaning: "the request body is not JSON or misses or mistypes a field", status: 400 },
  HR_BODY_TOO_LARGE: { meaning: "the request body is over the server's size cap (64 MiB)", status: 413 },
  HR_UNAUTHORIZED: { meaning: "the bearer token is missing or wrong", status: 401 },
  HR_NOT_FOUND: { meaning: "no such route, action or slot", status: 404 },
  HR_LEASE_UNKNOWN: { meaning: "the slot lease is not held by this job", status: 404 },
  HR_JOB_NOT_ACQUIRING: { meaning: "the job takes no new slots now (suspended, or waiting for its pool)", status: 409 },
  HR_JOB_RETIRED: { meaning: "the job is no longer served (deleted or re-created): no new slots", status: 410 },
  HR_POOL_GONE: { meaning: "the job's SandboxPool was deleted, and its slots with it", status: 410 },
  HR_WORK_LEASE_GONE: { meaning: "the work lease on an item expired, or the item is done", status: 410 },
  HR_POOL_NOT_READY: { meaning: "the job's pool has not adopted its sandboxes yet: retry shortly", status: 503 },
  HR_JOB_NOT_SERVED: { meaning: "this replica does not serve the job (yet): retry, or go to the leader it names", status: 503 },
} as const satisfies Record<string, { meaning: string; status?: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;
/** The codes that are HTTP answers of their own, i.e. have a status. */
export type HttpErrorCode = { [C in ErrorCode]: (typeof ERROR_CODES)[C] extends { status: number } ? C : never }[ErrorCode];

/** The base of every catalogued error: a stable code, the HTTP status that code answers with (if any), a cause. */
export class HermesError extends Error {
  readonly code: ErrorCode;
  /** The status a server answers this error with (fastify's name), where the code fixes one. */
  readonly statusCode: number | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    const entry: { meaning: string; status?: number } = ERROR_CODES[code];
    this.statusCode = entry.status;
  }
}

/** The message of anything thrown: an Error's message, anything else as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The error's class and message (`SandboxError: ...`), for text a model or a person reads where the kind matters. */
export function errorSummary(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The catalogue code of anything thrown; errors from outside the project are HR_INTERNAL. */
export function errorCode(error: unknown): ErrorCode {
  return error instanceof HermesError ? error.code : "HR_INTERNAL";
}

/** For text a person reads (conditions, Events): the message, with the code when the error has one. */
export function describeError(error: unknown): string {
  return error instanceof HermesError ? `${error.message} [${error.code}]` : errorMessage(error);
}

/** A request answered with the code's status; `fields` go into the JSON answer beside `error` and `code`. */
export class HttpError extends HermesError {
  declare readonly statusCode: number;
  readonly fields: Record<string, unknown>;
  constructor(code: HttpErrorCode, message: string, fields: Record<string, unknown> = {}) {
    super(code, message);
    this.fields = fields;
  }
}

/** The four ways a backend call fails; callers decide retry, replace or surface from this alone. */
export const sandboxErrorKinds = ["gone", "transient", "capacity", "configuration"] as const;
export type SandboxErrorKind = (typeof sandboxErrorKinds)[number];

const SANDBOX_CODES = {
  gone: "HR_SANDBOX_GONE",
  transient: "HR_SANDBOX_TRANSIENT",
  capacity: "HR_SANDBOX_CAPACITY",
  configuration: "HR_SANDBOX_CONFIGURATION",
} as const satisfies Record<SandboxErrorKind, ErrorCode>;

export class SandboxError extends HermesError {
  readonly kind: SandboxErrorKind;
  constructor(kind: SandboxErrorKind, message: string, options?: { cause?: unknown }) {
    super(SANDBOX_CODES[kind], message, options);
    this.kind = kind;
  }
}

export function isSandboxError(error: unknown, kind?: SandboxErrorKind): error is SandboxError {
  return error instanceof SandboxError && (kind === undefined || error.kind === kind);
}

/** The JSON body of an error answer, the same on every server: `{ error, code }`, a sandbox error's kind, an HttpError's fields. */
export function errorAnswer(error: unknown): { error: string; code: ErrorCode } & Record<string, unknown> {
  return {
    error: errorMessage(error),
    code: errorCode(error),
    ...(error instanceof SandboxError ? { kind: error.kind } : {}),
    ...(error instanceof HttpError ? error.fields : {}),
  };
}

/** The lease is not (or no longer) current: expired, released, or its sandbox went away. */
export class LeaseLostError extends HermesError {
  constructor(message: string) {
    super("HR_LEASE_LOST", message);
  }
}

/**
 * A failure that is not the agent's: the environment could not do its part (clone failed, a command it runs itself
 * broke), the sandbox died under a tool call, or the model endpoint was down. The runner retries such a trajectory
 * on another slot and never scores it 0.0. A `SandboxError` from `slot.exec` means the same and passes through
 * unchanged. Anything the agent caused (failing tests, a broken build) is a score of 0, not an error.
 */
export type InfrastructureSource = "setup" | "verify" | "sandbox" | "model";

const INFRASTRUCTURE_CODES = {
  setup: "HR_INFRA_SETUP",
  verify: "HR_INFRA_VERIFY",
  sandbox: "HR_INFRA_SANDBOX",
  model: "HR_INFRA_MODEL",
} as const satisfies Record<InfrastructureSource, ErrorCode>;

export class InfrastructureError extends HermesError {
  readonly source: InfrastructureSource;
  constructor(source: InfrastructureSource, message: string, options?: { cause?: unknown }) {
    super(INFRASTRUCTURE_CODES[source], message, options);
    this.source = source;
  }
}

export function isInfrastructureError(error: unknown): error is InfrastructureError {
  return error instanceof InfrastructureError;
}

/** The endpoint answered, but not with a usable completion (e.g. 400 context too long). Not an infra failure. */
export class ModelRequestError extends HermesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("HR_MODEL_REQUEST", message, options);
  }
}

/** A row the item schema rejects: a data error, never retried. */
export class InvalidItemError extends HermesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("HR_ITEM_INVALID", message, options);
  }
}

/** The item could not be scored: a data or configuration error, or retries exhausted. */
export class GroupFailedError extends HermesError {
  readonly itemId: string;
  readonly attempts: number;
  constructor(itemId: string, attempts: number, message: string, options?: { cause?: unknown }) {
    super("HR_GROUP_FAILED", message, options);
    this.itemId = itemId;
    this.attempts = attempts;
  }
}

/** A job's dataset could not be read, in a reader or when the controller loads it. */
export class DatasetError extends HermesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("HR_DATASET_UNREADABLE", message, options);
  }
}

export class ManifestError extends HermesError {
  constructor(message: string) {
    super("HR_MANIFEST_INVALID", message);
  }
}

/** A 4xx from the trainer: retrying the same body cannot help. */
export class TrainerRejectedError extends HermesError {
  constructor(message: string) {
    super("HR_TRAINER_REJECTED", message);
  }
}

/** The runners' API answered a runner's call with an error; `status` is the answer's. */
export class RunnersApiError extends HermesError {
  readonly status: number;
  constructor(status: number, message: string) {
    super("HR_RUNNERS_API", message);
    this.status = status;
  }
}
