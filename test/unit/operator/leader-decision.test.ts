import assert from "node:assert/strict";
import { test } from "node:test";
import { leaseDecision } from "../../../src/operator/runtime/leader.ts";

test("an empty or missing lease is acquired", () => {
  assert.equal(leaseDecision(undefined, "me", 0), "acquire");
  assert.equal(leaseDecision({ holder: "", leaseDurationSeconds: 15, observedAt: 0 }, "me", 0), "acquire");
});

test("the holder renews", () => {
  assert.equal(leaseDecision({ holder: "me", leaseDurationSeconds: 15, observedAt: 0 }, "me", 100_000), "renew");
});

test("another holder's lease is taken only after a full duration without change, by our clock", () => {
  const record = { holder: "other", leaseDurationSeconds: 15, observedAt: 1000 };
  assert.equal(leaseDecision(record, "me", 15_999), "wait");
  assert.equal(leaseDecision(record, "me", 16_000), "acquire");
});
