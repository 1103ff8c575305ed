import { z } from "zod";

/**
 * A cross-field rule written once and enforced twice: as a CEL `x-kubernetes-validations` entry in the CRD
 * (modern apiservers) and as a zod refinement in the controller (clusters older than 1.25 drop CEL).
 * `check` must agree with `rule`; the CEL unit tests run both over the same valid and invalid objects.
 */
export interface Rule<T> {
  rule: string;
  message: string;
  /** Where a zod issue points, relative to the object the rule sits on. */
  path?: readonly string[];
  check: (self: T) => boolean;
}

/** A transition rule (uses `oldSelf`): only the apiserver and `validateUpdate` can check it. */
export interface TransitionRule<T> {
  rule: string;
  message: string;
  check: (self: T, oldSelf: T) => boolean;
}

type CelEntry = { rule: string; message: string };

export function celEntries(rules: readonly (Rule<never> | TransitionRule<never>)[]): CelEntry[] {
  return rules.map(({ rule, message }) => ({ rule, message }));
}

/** Attaches the rules to an object schema: CEL in its JSON schema, the same checks as zod refinements. */
export function withRules<S extends z.ZodObject>(
  schema: S,
  rules: readonly Rule<z.infer<S>>[],
  transitions: readonly TransitionRule<z.infer<S>>[] = [],
): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (!r.check(value as z.infer<S>)) ctx.addIssue({ code: "custom", message: r.message, path: [...(r.path ?? [])] });
    }
  });
  const description = schema.description;
  return refined.meta({
    ...(description === undefined ? {} : { description }),
    "x-kubernetes-validations": celEntries([...rules, ...transitions] as never[]),
  }) as S;
}

/** `has(self.x)` in CEL: the key is present (zod leaves absent optional keys out). */
export function has(value: object, key: string): boolean {
  return (value as Record<string, unknown>)[key] !== undefined;
}
