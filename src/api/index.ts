import type { z } from "zod";
import { API_VERSION } from "./common.ts";
import { rolloutJobSpec, rolloutJobTransitionRules, type RolloutJobSpec, type RolloutJobStatus } from "./rolloutjob.ts";
import type { TransitionRule } from "./rules.ts";
import { sandboxPoolSpec, sandboxPoolTransitionRules, type SandboxPoolSpec, type SandboxPoolStatus } from "./sandboxpool.ts";

export * from "./common.ts";
export * from "./conditions.ts";
export * from "./rolloutjob.ts";
export * from "./sandboxpool.ts";
export * from "./pool-backends.ts";

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface SandboxPool {
  apiVersion: typeof API_VERSION;
  kind: "SandboxPool";
  metadata: ObjectMeta;
  spec: SandboxPoolSpec;
  status?: SandboxPoolStatus;
}

export interface RolloutJob {
  apiVersion: typeof API_VERSION;
  kind: "RolloutJob";
  metadata: ObjectMeta;
  spec: RolloutJobSpec;
  status?: RolloutJobStatus;
}

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** Every problem at once, each naming its field (`spec.dataset.jsonl: ...`), as the apiserver would. */
export function formatIssues(error: z.ZodError, prefix = "spec"): string[] {
  return error.issues.map((issue) => `${[prefix, ...issue.path.map(String)].join(".")}: ${issue.message}`);
}

function validate<S extends z.ZodType>(schema: S, spec: unknown): Validation<z.infer<S>> {
  const result = schema.safeParse(spec);
  return result.success ? { ok: true, value: result.data } : { ok: false, errors: formatIssues(result.error) };
}

function transitions<T>(rules: readonly TransitionRule<T>[], spec: T, oldSpec: T): string[] {
  return rules.filter((r) => !r.check(spec, oldSpec)).map((r) => `spec: ${r.message}`);
}

/** The CRD's schema and CEL rules, again in code: clusters older than 1.25 ignore CEL. */
export function validateSandboxPoolSpec(spec: unknown, oldSpec?: SandboxPoolSpec): Validation<SandboxPoolSpec> {
  const result = validate(sandboxPoolSpec, spec);
  if (!result.ok || oldSpec === undefined) return result;
  const errors = transitions(sandboxPoolTransitionRules, result.value, oldSpec);
  return errors.length === 0 ? result : { ok: false, errors };
}

export function validateRolloutJobSpec(spec: unknown, oldSpec?: RolloutJobSpec): Validation<RolloutJobSpec> {
  const result = validate(rolloutJobSpec, spec);
  if (!result.ok || oldSpec === undefined) return result;
  const errors = transitions(rolloutJobTransitionRules, result.value, oldSpec);
  return errors.length === 0 ? result : { ok: false, errors };
}
