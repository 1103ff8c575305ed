/**
 * Reads the same YAML a user would `kubectl apply`: a RolloutJob and, optionally, a SandboxPool (from --pool or
 * from another document of the job file). Validation is the CRDs' own (zod + the CEL rules in code); every
 * error names its file and field.
 */
import { parseAllDocuments } from "yaml";
import { ManifestError } from "../base/errors.ts";
import { API_VERSION, validateRolloutJobSpec, validateSandboxPoolSpec, type RolloutJobSpec, type SandboxPoolSpec } from "../api/index.ts";

export interface Manifest<Spec> {
  name: string;
  spec: Spec;
}

interface RawObject {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown };
  spec?: unknown;
}

export function parseObjects(text: string, source: string): RawObject[] {
  const objects: RawObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new ManifestError(`${source}: invalid YAML: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== "object" || Array.isArray(value)) throw new ManifestError(`${source}: each document must be a Kubernetes object`);
    objects.push(value as RawObject);
  }
  return objects;
}

function pick<Spec>(
  objects: RawObject[],
  kind: "RolloutJob" | "SandboxPool",
  source: string,
  validate: (spec: unknown) => { ok: true; value: Spec } | { ok: false; errors: string[] },
): Manifest<Spec> | undefined {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length === 0) return undefined;
  if (found.length > 1) throw new ManifestError(`${source}: more than one ${kind}`);
  const object = found[0] as RawObject;
  if (object.apiVersion !== API_VERSION)
    throw new ManifestError(`${source}: ${kind} apiVersion must be ${API_VERSION}, got ${String(object.apiVersion)}`);
  const name = object.metadata?.name;
  if (typeof name !== "string" || name === "") throw new ManifestError(`${source}: ${kind} metadata.name is required`);
  const result = validate(object.spec ?? {});
  if (!result.ok) throw new ManifestError(`${source}: ${kind} ${name} is invalid:\n  ${result.errors.join("\n  ")}`);
  return { name, spec: result.value };
}

/** The embedded default when no pool is given: a local pool (directories and processes on this host). */
export function defaultLocalPool(name: string): Manifest<SandboxPoolSpec> {
  const result = validateSandboxPoolSpec({ backend: "local", minSandboxes: 1, maxSandboxes: 2, slotsPerSandbox: 4 });
  if (!result.ok) throw new Error(`built-in local pool is invalid: ${result.errors.join("; ")}`);
  return { name, spec: result.value };
}

export function loadManifests(
  job: { text: string; source: string },
  pool?: { text: string; source: string },
): {
  job: Manifest<RolloutJobSpec>;
  pool: Manifest<SandboxPoolSpec>;
} {
  const jobObjects = parseObjects(job.text, job.source);
  const rolloutJob = pick(jobObjects, "RolloutJob", job.source, (s) => validateRolloutJobSpec(s));
  if (!rolloutJob) throw new ManifestError(`${job.source}: no RolloutJob found`);
  const poolSource = pool ?? job;
  const poolObjects = pool ? parseObjects(pool.text, pool.source) : jobObjects;
  const sandboxPool = pick(poolObjects, "SandboxPool", poolSource.source, (s) => validateSandboxPoolSpec(s));
  if (pool && !sandboxPool) throw new ManifestError(`${pool.source}: no SandboxPool found`);
  return { job: rolloutJob, pool: sandboxPool ?? defaultLocalPool(rolloutJob.spec.poolRef.name) };
}
