import { z } from "zod";

export const GROUP = "hermes-rollouts.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const CATEGORY = "hermes";

/** Kubernetes resource quantity (`500m`, `2`, `4Gi`), the same pattern the apiserver uses for quantities. */
export const quantity = z
  .string()
  .regex(/^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/, "must be a Kubernetes quantity such as 500m, 2 or 4Gi");

export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lowercase letters, digits and '-')");

/** A DNS-1123 subdomain: the names of ServiceAccounts, RuntimeClasses and PriorityClasses. */
export const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')",
  );

export const secretKeyRef = z
  .object({
    name: dnsLabel.describe("Name of a Secret in the same namespace."),
    key: z.string().min(1).describe("Key inside the Secret's data."),
  })
  .strict()
  .describe("A key of a Secret in the object's namespace.");

export const secretRef = z.object({ name: dnsLabel.describe("Name of a Secret in the same namespace.") }).strict();

export const conditionStatus = z.enum(["True", "False", "Unknown"]);

export const condition = z
  .object({
    type: z.string().min(1).max(316).describe("Type of condition in CamelCase, e.g. Ready or Complete."),
    status: conditionStatus.describe("True, False or Unknown."),
    observedGeneration: z.int().min(0).optional().describe("The .metadata.generation the condition was computed from."),
    lastTransitionTime: z.string().describe("When the condition last changed status (RFC 3339)."),
    reason: z.string().min(1).max(1024).describe("A CamelCase word saying why; the operations guide lists every reason."),
    message: z.string().max(32768).describe("A human-readable explanation; may be empty."),
  })
  .strict();

export type Condition = z.infer<typeof condition>;

export const conditions = z
  .array(condition)
  .max(16)
  .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
  .describe("Current state as standard conditions, one per type.");

/** Parses a quantity into a number of base units (cores for cpu, bytes for memory). */
export function parseQuantity(value: string): number {
  const match = /^([+-]?[0-9.]+)([a-zA-Z]*)$/.exec(value);
  if (!match) throw new Error(`not a quantity: ${value}`);
  const units: Record<string, number> = {
    "": 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
  };
  const factor = units[match[2] ?? ""];
  if (factor === undefined) throw new Error(`unknown quantity suffix in ${value}`);
  return Number(match[1]) * factor;
}
