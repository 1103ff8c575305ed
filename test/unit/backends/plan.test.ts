import { test } from "node:test";
import assert from "node:assert/strict";
import { planSandboxes, type ObservedSandbox, type PlanInput, type PlanOutput } from "../../../src/backends/slots/plan.ts";

const sb = (name: string, extra: Partial<ObservedSandbox> = {}): ObservedSandbox => ({
  name,
  phase: "ready",
  templateHash: "v2",
  leasedSlots: 0,
  createdAt: new Date(Date.parse("2026-01-01") + Number(name.replace(/\D/g, "") || 0) * 1000),
  ...extra,
});
const base: PlanInput = {
  observed: [],
  templateHash: "v2",
  min: 1,
  max: 4,
  slotsPerSandbox: 10,
  waitingAcquirers: 0,
  replace: new Set(),
  inFlightCreates: 0,
  maxConcurrentCreates: 2,
  allowScaleDown: true,
  lifetimeSeconds: 3600,
  now: Date.parse("2026-01-01T00:10:00Z"),
};
// Created at 2026-01-01T00:00:00Z + n seconds; with a one-hour lifetime the last 15 minutes start at 00:45.
const nearLifetime = Date.parse("2026-01-01T00:45:00Z");

const cases: { name: string; input: Partial<PlanInput>; want: Pick<PlanOutput, "create" | "terminate"> & Partial<PlanOutput> }[] = [
  { name: "empty pool creates min", input: { min: 2 }, want: { create: 2, terminate: [], desired: 2 } },
  { name: "creates are capped by maxConcurrentCreates", input: { min: 4 }, want: { create: 2, terminate: [] } },
  { name: "in-flight creates count as capacity and budget", input: { min: 4, inFlightCreates: 2 }, want: { create: 0, terminate: [] } },
  {
    name: "waiters beyond capacity scale up",
    input: { observed: [sb("s1", { leasedSlots: 10 })], waitingAcquirers: 15 },
    want: { create: 2, terminate: [], desired: 3 },
  },
  {
    name: "never above max",
    input: {
      observed: [sb("s1", { leasedSlots: 10 }), sb("s2", { leasedSlots: 10 }), sb("s3", { leasedSlots: 10 })],
      waitingAcquirers: 50,
    },
    want: { create: 1, terminate: [], desired: 4 },
  },
  {
    name: "failed and terminated are removed and replaced",
    input: { observed: [sb("s1", { phase: "failed" }), sb("s2", { phase: "terminated" })] },
    want: {
      create: 1,
      terminate: [
        { name: "s1", reason: "failed" },
        { name: "s2", reason: "terminated" },
      ],
    },
  },
  {
    name: "a sandbox to replace without leases goes and is replaced",
    input: { observed: [sb("s1")], replace: new Set(["s1"]) },
    want: { create: 1, terminate: [{ name: "s1", reason: "replace" }] },
  },
  {
    name: "a sandbox to replace with leases drains first",
    input: { observed: [sb("s1", { leasedSlots: 3 })], replace: new Set(["s1"]) },
    want: { create: 1, terminate: [], draining: ["s1"] },
  },
  {
    name: "stale idle sandboxes roll over",
    input: { observed: [sb("s1", { templateHash: "v1" }), sb("s2")] },
    want: { create: 0, terminate: [{ name: "s1", reason: "stale" }] },
  },
  {
    name: "stale sandboxes with leases are kept until drained",
    input: { observed: [sb("s1", { templateHash: "v1", leasedSlots: 1 })] },
    want: { create: 1, terminate: [], draining: ["s1"] },
  },
  {
    name: "draining sandboxes count toward max",
    input: { max: 2, observed: [sb("s1", { templateHash: "v1", leasedSlots: 10 }), sb("s2", { leasedSlots: 10 })], waitingAcquirers: 30 },
    want: { create: 0, terminate: [] },
  },
  {
    name: "idle surplus goes, oldest first",
    input: { observed: [sb("s3"), sb("s1"), sb("s2", { leasedSlots: 1 })] },
    want: {
      create: 0,
      terminate: [
        { name: "s1", reason: "surplus" },
        { name: "s3", reason: "surplus" },
      ],
    },
  },
  {
    name: "no scale-down while not allowed",
    input: { allowScaleDown: false, observed: [sb("s1"), sb("s2")] },
    want: { create: 0, terminate: [] },
  },
  {
    name: "no scale-down while acquirers wait",
    input: { observed: [sb("s1"), sb("s2", { phase: "starting" })], waitingAcquirers: 1 },
    want: { create: 0, terminate: [] },
  },
  {
    name: "a sandbox near its lifetime is replaced before it: idle, it goes now",
    input: { now: nearLifetime, min: 2, observed: [sb("s0"), sb("s600")] },
    want: { create: 1, terminate: [{ name: "s0", reason: "expiring" }] },
  },
  {
    name: "a sandbox near its lifetime with leases drains while its replacement starts",
    input: { now: nearLifetime, observed: [sb("s0", { leasedSlots: 2 })] },
    want: { create: 1, terminate: [], draining: ["s0"] },
  },
  {
    name: "no lifetime, no expiry",
    input: { now: nearLifetime + 3_600_000, lifetimeSeconds: 0, observed: [sb("s0")] },
    want: { create: 0, terminate: [] },
  },
  {
    name: "starting sandboxes are never surplus",
    input: { observed: [sb("s1", { phase: "starting" }), sb("s2", { phase: "starting" })] },
    want: { create: 0, terminate: [] },
  },
];

for (const { name, input, want } of cases) {
  test(`plan: ${name}`, () => {
    const got = planSandboxes({ ...base, ...input });
    assert.equal(got.create, want.create);
    assert.deepEqual(got.terminate, want.terminate);
    if (want.desired !== undefined) assert.equal(got.desired, want.desired);
    if (want.draining !== undefined) assert.deepEqual(got.draining, want.draining);
  });
}

test("free slots go to current sandboxes first, then stale ones, then ones near their lifetime", async () => {
  const { drainRank } = await import("../../../src/backends/slots/plan.ts");
  const template = { templateHash: "v2", lifetimeSeconds: 3600 };
  const young = new Date(nearLifetime - 60_000);
  const old = new Date(nearLifetime - 3_000_000);
  assert.deepEqual(
    [
      drainRank({ templateHash: "v2", createdAt: young }, template, nearLifetime),
      drainRank({ templateHash: "v1", createdAt: young }, template, nearLifetime),
      drainRank({ templateHash: "v2", createdAt: old }, template, nearLifetime),
    ],
    [0, 1, 2],
  );
});
