import { z } from "zod";
import { CATEGORY, GROUP, VERSION } from "./common.ts";
import { resources, type ResourceDefinition } from "./resources.ts";

type JsonSchema = { [key: string]: unknown };

/**
 * Turns zod's JSON Schema into a structural OpenAPI v3 schema the apiserver accepts: no `$schema`, no
 * `additionalProperties: false` beside `properties` (pruning already drops unknown fields), no JSON-Schema-only
 * keywords (`propertyNames`), and integer bounds that fit int64.
 */
export function toStructural(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "$schema" || key === "id" || key === "title" || key === "propertyNames") continue;
    if (key === "additionalProperties" && (value === false || schema.properties !== undefined)) continue;
    if ((key === "maximum" || key === "minimum") && typeof value === "number" && Math.abs(value) >= Number.MAX_SAFE_INTEGER) continue;
    if (key === "exclusiveMinimum" && typeof value === "number") {
      out.minimum = value;
      out.exclusiveMinimum = true;
      continue;
    }
    if (key === "properties") {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, toStructural(v)]));
    } else if ((key === "items" || key === "additionalProperties") && typeof value === "object" && value !== null) {
      out[key] = toStructural(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  // A union of scalar types (`type: [boolean, number, string]`) has no structural form: the apiserver keeps the value
  // as given and the controller's zod schema checks its type.
  if (Array.isArray(out.type)) {
    delete out.type;
    out["x-kubernetes-preserve-unknown-fields"] = true;
  }
  if (out["x-kubernetes-preserve-unknown-fields"] === true) delete out.additionalProperties;
  return out;
}

export function openApiSchema(definition: ResourceDefinition): JsonSchema {
  const io = { io: "input", unrepresentable: "throw" } as const;
  return {
    type: "object",
    description: definition.description,
    required: ["spec"],
    properties: {
      apiVersion: { type: "string", description: "APIVersion defines the versioned schema of this representation of an object." },
      kind: { type: "string", description: "Kind is a string value representing the REST resource this object represents." },
      metadata: { type: "object" },
      spec: toStructural(z.toJSONSchema(definition.spec, io) as JsonSchema),
      status: toStructural(z.toJSONSchema(definition.status, io) as JsonSchema),
    },
  };
}

export function buildCrd(definition: ResourceDefinition): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${definition.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: definition.kind,
        listKind: `${definition.kind}List`,
        plural: definition.plural,
        singular: definition.kind.toLowerCase(),
        shortNames: definition.shortNames,
        categories: [CATEGORY],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: definition.printerColumns,
          schema: { openAPIV3Schema: openApiSchema(definition) },
        },
      ],
    },
  };
}

export function allCrds(): { fileName: string; crd: JsonSchema }[] {
  return resources.map((definition) => ({ fileName: `${definition.plural}.${GROUP}.yaml`, crd: buildCrd(definition) }));
}
