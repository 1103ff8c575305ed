import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { openApiSchema } from "../../../src/api/crd.ts";
import { validateRolloutJobSpec, validateSandboxPoolSpec } from "../../../src/api/index.ts";
import { rolloutJobResource, sandboxPoolResource } from "../../../src/api/resources.ts";
import { crossFieldCases, schemaInvalidCases } from "../../fixtures/api-cases.ts";
import { applyDefaults, celFailures } from "../../support/cel.ts";

const specSchemas = {
  pool: (openApiSchema(sandboxPoolResource).properties as Record<string, object>).spec!,
  job: (openApiSchema(rolloutJobResource).properties as Record<string, object>).spec!,
};

function zodErrors(kind: "pool" | "job", spec: object, oldSpec?: object): string[] {
  const validateSpec = kind === "pool" ? validateSandboxPoolSpec : validateRolloutJobSpec;
  const old = oldSpec === undefined ? undefined : validateSpec(oldSpec);
  if (old !== undefined && !old.ok) throw new Error(`fixture oldSpec is invalid: ${old.errors.join("; ")}`);
  const result = validateSpec(spec, old?.value as never);
  return result.ok ? [] : result.errors;
}

describe("cross-field rules: CEL (as a modern apiserver runs it) and zod agree", () => {
  for (const c of crossFieldCases) {
    test(`${c.kind}: ${c.name}`, () => {
      const schema = specSchemas[c.kind];
      const cel = celFailures(schema, applyDefaults(schema, c.spec), c.oldSpec && applyDefaults(schema, c.oldSpec));
      const zod = zodErrors(c.kind, c.spec, c.oldSpec);
      if (c.error === undefined) {
        assert.deepEqual(cel, []);
        assert.deepEqual(zod, []);
      } else {
        assert.ok(
          cel.some((m) => m.includes(c.error!)),
          `CEL should say "${c.error}", said ${JSON.stringify(cel)}`,
        );
        assert.ok(
          zod.some((m) => m.includes(c.error!)),
          `zod should say "${c.error}", said ${JSON.stringify(zod)}`,
        );
      }
    });
  }
});

describe("zod rejects what the OpenAPI schema rejects, naming the field", () => {
  for (const c of schemaInvalidCases) {
    test(`${c.kind}: ${c.name}`, () => {
      const errors = zodErrors(c.kind, c.spec);
      assert.ok(
        errors.some((m) => m.startsWith(`${c.field}:`)),
        `expected an error on ${c.field}, got ${JSON.stringify(errors)}`,
      );
    });
  }
});

test("defaults fill a minimal pool the way the CRD defaults do", () => {
  const result = validateSandboxPoolSpec({ backend: "local" });
  assert.ok(result.ok);
  assert.deepEqual(applyDefaults(specSchemas.pool, { backend: "local" }), result.value);
});
