import assert from "node:assert/strict";
import { test } from "node:test";
import { validateRolloutJobSpec, validateSandboxPoolSpec } from "../../../src/api/index.ts";
import { exampleObjects } from "../../support/examples.ts";

test("every example object validates against the API schema", () => {
  const examples = exampleObjects();
  assert.ok(examples.length >= 3, "examples/ holds at least the modal, nomad and vllm examples");
  for (const { file, object } of examples) {
    const validate =
      object.kind === "SandboxPool" ? validateSandboxPoolSpec : object.kind === "RolloutJob" ? validateRolloutJobSpec : undefined;
    assert.ok(validate, `${file}: unexpected kind ${object.kind}`);
    const result = validate(object.spec);
    assert.ok(result.ok, `${file}: ${result.ok ? "" : result.errors.join("; ")}`);
  }
});
