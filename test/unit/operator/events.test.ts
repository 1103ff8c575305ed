import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoreV1Event } from "@kubernetes/client-node";
import { FakeClock } from "../../../src/base/clock.ts";
import { EventRecorder } from "../../../src/operator/runtime/events.ts";

const pool = { apiVersion: "hermes-rollouts.dev/v1alpha1", kind: "SandboxPool", metadata: { name: "p", namespace: "ns", uid: "u1" } };

test("repeats within the window bump count on one Event; a different message or an old repeat makes a new one", async () => {
  const clock = new FakeClock(1_000_000);
  const created: CoreV1Event[] = [];
  const updates: Array<[string, number]> = [];
  const recorder = new EventRecorder(
    { create: async (_ns, e) => void created.push(e), update: async (_ns, name, count) => void updates.push([name, count]) },
    { clock, windowMs: 60_000 },
  );
  recorder.event(pool, "Warning", "CreateFailed", "quota");
  recorder.event(pool, "Warning", "CreateFailed", "quota");
  recorder.event(pool, "Warning", "CreateFailed", "quota");
  recorder.event(pool, "Normal", "SandboxCreated", "created p-1");
  clock.advance(120_000);
  recorder.event(pool, "Warning", "CreateFailed", "quota");
  await recorder.flush();
  assert.equal(created.length, 3);
  assert.equal(created[0]!.involvedObject.uid, "u1");
  assert.equal(created[0]!.reason, "CreateFailed");
  assert.deepEqual(updates, [
    [created[0]!.metadata!.name!, 2],
    [created[0]!.metadata!.name!, 3],
  ]);
});

test("a failing sink never throws into the caller", async () => {
  const recorder = new EventRecorder({
    create: async () => {
      throw new Error("403");
    },
    update: async () => {},
  });
  recorder.event(pool, "Normal", "X", "y");
  await recorder.flush();
});

test("what aggregation remembers stays within one window's events, however many unique messages a long run sends", async () => {
  const clock = new FakeClock(1_000_000);
  const recorder = new EventRecorder({ create: async () => {}, update: async () => {} }, { clock, windowMs: 60_000 });
  for (let hour = 0; hour < 5; hour++) {
    for (let i = 0; i < 200; i++) recorder.event(pool, "Normal", "SandboxCreated", `created p-${hour}-${i}`);
    clock.advance(3_600_000);
  }
  recorder.event(pool, "Normal", "SandboxCreated", "one more");
  await recorder.flush();
  assert.equal(recorder.remembered, 1, "events older than the window are forgotten");
});
