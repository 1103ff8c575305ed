import { run } from "@bufbuild/cel";

/**
 * Evaluates a CRD's `x-kubernetes-validations` the way the apiserver does: defaults from the schema applied
 * first, then every rule at every schema node whose value is present, with `oldSelf` for transition rules.
 */
type Schema = {
  type?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
  "x-kubernetes-validations"?: { rule: string; message: string }[];
};

export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((v) => applyDefaults(schema.items!, v)) : value;
  if (value === null || typeof value !== "object" || !schema.properties) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, child] of Object.entries(schema.properties)) {
    if (out[key] === undefined && child.default !== undefined) out[key] = structuredClone(child.default);
    if (out[key] !== undefined) out[key] = applyDefaults(child, out[key]);
  }
  return out;
}

/** CEL sees JSON objects as maps and whole numbers as int, as the apiserver's conversion does. */
export function toCel(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toCel);
  if (value !== null && typeof value === "object") return new Map(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  return value;
}

export function celFailures(schema: Schema, value: unknown, oldValue?: unknown, path = "spec"): string[] {
  if (value === undefined) return [];
  const failures: string[] = [];
  for (const { rule, message } of schema["x-kubernetes-validations"] ?? []) {
    const transition = rule.includes("oldSelf");
    if (transition && oldValue === undefined) continue;
    const bindings = transition ? { self: toCel(value), oldSelf: toCel(oldValue) } : { self: toCel(value) };
    if (run(rule, bindings as never) !== true) failures.push(`${path}: ${message}`);
  }
  if (schema.properties && value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(schema.properties)) {
      const old = oldValue === undefined ? undefined : (oldValue as Record<string, unknown>)[key];
      failures.push(...celFailures(child, (value as Record<string, unknown>)[key], old, `${path}.${key}`));
    }
  }
  if (schema.items && Array.isArray(value)) {
    value.forEach((item, i) => failures.push(...celFailures(schema.items!, item, undefined, `${path}[${i}]`)));
  }
  return failures;
}
