import assert from "node:assert/strict";
import { test } from "node:test";
import { setCondition, setConditions } from "../../../src/operator/runtime/conditions.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const t1 = new Date("2026-01-01T00:05:00Z");

test("a new condition gets the generation and the current time", () => {
  const [c] = setCondition([], { type: "Ready", status: "False", reason: "Starting" }, 3, t0);
  assert.deepEqual(c, {
    type: "Ready",
    status: "False",
    observedGeneration: 3,
    lastTransitionTime: t0.toISOString(),
    reason: "Starting",
    message: "Starting",
  });
});

test("a reason or message change keeps lastTransitionTime; a status flip moves it", () => {
  const first = setCondition([], { type: "Ready", status: "False", reason: "Starting" }, 1, t0);
  const same = setCondition(first, { type: "Ready", status: "False", reason: "Waiting", message: "2/3" }, 2, t1);
  assert.equal(same[0]!.lastTransitionTime, t0.toISOString());
  assert.equal(same[0]!.observedGeneration, 2);
  assert.equal(same[0]!.reason, "Waiting");
  const flipped = setCondition(same, { type: "Ready", status: "True", reason: "Ready" }, 2, t1);
  assert.equal(flipped[0]!.lastTransitionTime, t1.toISOString());
});

test("types stay unique and in first-set order", () => {
  const conds = setConditions(
    [],
    [
      { type: "Ready", status: "False", reason: "A" },
      { type: "Degraded", status: "False", reason: "B" },
      { type: "Ready", status: "True", reason: "C" },
    ],
    1,
    t0,
  );
  assert.deepEqual(
    conds.map((c) => `${c.type}=${c.status}`),
    ["Ready=True", "Degraded=False"],
  );
});
