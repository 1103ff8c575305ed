import type { Condition } from "../../api/index.ts";

/** A condition to set; a kind narrows `Type` and `Reason` to its enums from src/api/conditions.ts. */
export interface ConditionInput<Type extends string = string, Reason extends string = string> {
  type: Type;
  status: "True" | "False" | "Unknown";
  reason: Reason;
  message?: string;
}

/**
 * Sets one condition with metav1.Condition semantics: `lastTransitionTime` changes only when the status flips,
 * `observedGeneration` is stamped, types stay unique and keep their order. Returns a new array.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  generation: number,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: input.type,
    status: input.status,
    observedGeneration: generation,
    lastTransitionTime: previous && previous.status === input.status ? previous.lastTransitionTime : now.toISOString(),
    reason: input.reason,
    // Never empty: the 1.20 apiserver turns "" inside a map-typed list into null on patch and rejects it.
    message: input.message || input.reason,
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function setConditions(
  conditions: readonly Condition[] | undefined,
  inputs: readonly ConditionInput[],
  generation: number,
  now: Date,
): Condition[] {
  return inputs.reduce<Condition[]>((acc, input) => setCondition(acc, input, generation, now), [...(conditions ?? [])]);
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}
