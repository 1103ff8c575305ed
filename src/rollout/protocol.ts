import { z } from "zod";
import { formatIssues, rolloutJobSpec, type Validation } from "../api/index.ts";
import { sandboxErrorKinds } from "../base/errors.ts";
import type { ExecRequest, ExecResult } from "../backends/types.ts";
import { scoredDataGroupSchema } from "./scored.ts";

/**
 * Wire format of the runners' API, the controller's HTTP API for runner pods: every call is
 * `POST {RUNNERS_API_PREFIX}/{namespace}/{job}/{action}` (`info` also answers GET) with a JSON body, authenticated
 * with the job's token (`Authorization: Bearer <token>`). The server validates each request with its action's
 * `request` schema (a mismatch is a 400 naming the field); the client parses each answer with its `answer` schema.
 * A failed call answers `failureAnswerSchema` with its HTTP status.
 */
export const RUNNERS_API_PREFIX = "/v1/jobs";

export const jobPath = (namespace: string, job: string) =>
  `${RUNNERS_API_PREFIX}/${encodeURIComponent(namespace)}/${encodeURIComponent(job)}`;

const id = z.string().min(1);
const leaseRequest = z.object({ leaseId: id });
const okAnswer = z.object({ ok: z.boolean() });

/**
 * A slot command as `LeasedSlot.exec` takes it: the lease names the slot. Looser than the sandbox server's schema,
 * as the backends' `ExecRequest` is: a tool's timeout cut to the trajectory's deadline is not a whole millisecond.
 * The controller refuses limits beyond the job's own (its longest command, its output cap): a 400 naming the field.
 */
const slotExecRequest = z.object({
  command: z.union([z.string(), z.array(z.string()).readonly()]),
  cwd: z.string().optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeoutMs: z.number().positive(),
  maxOutputBytes: z.int().positive().optional(),
  stdin: z.string().optional(),
  /** An environment's cache-writing step (ExecRequest.trusted); the agent loop's tool calls never set it. */
  trusted: z.boolean().optional(),
}) satisfies z.ZodType<Omit<ExecRequest, "slot">>;

const execResult = z.object({
  exitCode: z.int(),
  stdout: z.string(),
  stderr: z.string(),
  durationMs: z.number(),
  timedOut: z.boolean(),
  truncated: z.boolean(),
}) satisfies z.ZodType<ExecResult>;

const jobInfo = z.object({
  spec: rolloutJobSpec,
  items: z.int().min(0),
  environmentConfig: z.record(z.string(), z.unknown()),
  suspended: z.boolean(),
});

/** An item to run (`leaseId`), or why there is none: all done, the job suspended, or wait and ask again. */
const nextWork = z.union([
  z.object({ done: z.literal(true) }),
  z.object({ suspended: z.literal(true) }),
  z.object({ waitMs: z.number() }),
  z.object({ leaseId: id, index: z.int(), attempt: z.int(), row: z.unknown(), expiresAt: z.number(), ttlMs: z.number() }),
]);

/** A scored group for one item attempt; `scores` are the group's, repeated so the controller need not read the group. */
const groupSubmission = z.object({ index: z.int().min(0), attempt: z.int(), scores: z.array(z.number()), group: scoredDataGroupSchema });

const slotLease = z.object({
  leaseId: id,
  sandbox: z.string(),
  slot: z.int(),
  image: z.string().optional(),
  expiresAt: z.number(),
  ttlMs: z.number(),
});

const actions = {
  info: { request: z.object({}), answer: jobInfo },
  next: { request: z.object({ runner: id }), answer: nextWork },
  renew: { request: leaseRequest, answer: z.object({ expiresAt: z.number(), suspended: z.boolean() }) },
  handback: { request: leaseRequest, answer: okAnswer },
  fail: { request: leaseRequest, answer: okAnswer },
  groups: { request: groupSubmission, answer: z.object({ stored: z.boolean() }) },
  /**
   * `timeoutMs` is capped by the pool's acquire timeout; `trajectoryId` names the caller in logs; `image` is the item's
   * sandbox image (spec.environment.image), the slot's sandbox runs it; `group` is a placement key (a group's id):
   * the slots of one group go to one sandbox where its free slots allow.
   */
  "slots/acquire": {
    request: z.object({
      trajectoryId: z.string().optional(),
      timeoutMs: z.number().optional(),
      image: z.string().min(1).optional(),
      group: z.string().min(1).max(128).optional(),
    }),
    answer: slotLease,
  },
  "slots/renew": { request: leaseRequest, answer: z.object({ expiresAt: z.number() }) },
  "slots/release": { request: leaseRequest, answer: okAnswer },
  "slots/exec": { request: leaseRequest.extend({ request: slotExecRequest }), answer: execResult },
  "slots/read": { request: leaseRequest.extend({ path: id }), answer: z.object({ base64: z.string() }) },
  "slots/write": { request: leaseRequest.extend({ path: id, base64: z.string() }), answer: okAnswer },
} as const;

export type RunnersApiAction = keyof typeof actions;
/** What a client sends for an action. */
export type RunnersApiRequest<A extends RunnersApiAction> = z.input<(typeof actions)[A]["request"]>;
/** What the server's handler gets for an action, once validated. */
export type RunnersApiValidRequest<A extends RunnersApiAction> = z.output<(typeof actions)[A]["request"]>;
export type RunnersApiAnswer<A extends RunnersApiAction> = z.output<(typeof actions)[A]["answer"]>;

/**
 * Every action (its path under the job) with the schemas of its request body and answer. Typed per action, so code
 * generic in the action gets that action's types from a lookup.
 */
export const runnersApiActions: {
  [A in RunnersApiAction]: {
    request: z.ZodType<RunnersApiValidRequest<A>, RunnersApiRequest<A>>;
    answer: z.ZodType<RunnersApiAnswer<A>>;
  };
} = actions;

export type JobInfo = RunnersApiAnswer<"info">;
export type NextWork = RunnersApiAnswer<"next">;

export const isRunnersApiAction = (action: string): action is RunnersApiAction => Object.hasOwn(actions, action);

/**
 * The body of any failed call. `kind`: a sandbox failure, kept across the wire; `retry`: this replica cannot serve
 * the job yet, call again shortly; `leaderURL`: where the leader serves the API, when a follower knows it.
 */
export const failureAnswerSchema = z.object({
  error: z.string(),
  /** The error catalogue's code (src/base/errors.ts); a string, so a runner of another version still reads the answer. */
  code: z.string().optional(),
  kind: z.enum(sandboxErrorKinds).optional(),
  retry: z.boolean().optional(),
  leaderURL: z.string().optional(),
});
export type FailureAnswer = z.infer<typeof failureAnswerSchema>;

type Issue = z.core.$ZodIssue;

const valueAt = (root: unknown, path: readonly PropertyKey[]): unknown =>
  path.reduce<unknown>(
    (value, key) => (typeof value === "object" && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined),
    root,
  );

/**
 * A union that matched no variant says only "invalid input"; this keeps the issues of the variant the value was
 * meant as (the one missing the fewest of its keys, then the one with the fewest problems), so they name a field.
 */
function closestVariants(issues: readonly Issue[], root: unknown): Issue[] {
  return issues.flatMap((issue) => {
    if (issue.code !== "invalid_union" || issue.errors.length === 0) return [issue];
    const value = valueAt(root, issue.path);
    const absent = (variant: Issue[]) =>
      variant.filter((i) => i.path.length > 0 && !(typeof value === "object" && value !== null && i.path[0]! in value)).length;
    const closest = issue.errors.reduce((best, variant) =>
      absent(variant) < absent(best) || (absent(variant) === absent(best) && variant.length < best.length) ? variant : best,
    );
    return closestVariants(
      closest.map((i) => ({ ...i, path: [...issue.path, ...i.path] })),
      root,
    );
  });
}

/** Parses with zod, every problem named by its field under `where` (`body.timeoutMs: ...`). */
export function parseWire<S extends z.ZodType>(schema: S, value: unknown, where: "body" | "answer"): Validation<z.output<S>> {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, errors: formatIssues(new z.ZodError(closestVariants(result.error.issues, value)), where) };
}
