import assert from "node:assert/strict";
import { test } from "node:test";
import { poolBlocker } from "../../../src/operator/rolloutjob/status.ts";

const ready = { deleting: false, ready: true, readyReason: "SandboxesReady" };

test("a job runs only on a Ready pool; a pool gone under a started job is PoolDeleted, never PoolNotFound", () => {
  assert.equal(poolBlocker("p", ready, true), undefined);
  assert.equal(poolBlocker("p", undefined, false)?.reason, "PoolNotFound");
  assert.equal(poolBlocker("p", undefined, true)?.reason, "PoolDeleted");
  assert.equal(poolBlocker("p", { ...ready, deleting: true }, false)?.reason, "PoolDeleted");
  const starting = poolBlocker("p", { deleting: false, ready: false, readyReason: "SandboxesStarting" }, false);
  assert.equal(starting?.reason, "PoolNotReady");
  assert.match(starting!.message, /SandboxesStarting/);
});

test("a started job is not blocked by its pool scaling up, only by a pool that is broken", () => {
  assert.equal(poolBlocker("p", { deleting: false, ready: false, readyReason: "SandboxesStarting" }, true), undefined);
  assert.equal(poolBlocker("p", { deleting: false, ready: false, readyReason: "BackendError" }, true)?.reason, "PoolNotReady");
});
