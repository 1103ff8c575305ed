import assert from "node:assert/strict";
import { test } from "node:test";
import { sandboxPoolSpec } from "../../../src/api/index.ts";
import type { SandboxInfo } from "../../../src/backends/types.ts";
import { planPool, poolTemplate } from "../../../src/controller/sandboxpool/plan.ts";

const spec = sandboxPoolSpec.parse({ backend: "local", minSandboxes: 1, maxSandboxes: 4, slotsPerSandbox: 2, maxConcurrentCreates: 2 });
const template = poolTemplate("ns/p", spec);
const now = Date.parse("2026-01-01T00:00:00Z");
const sandbox = (id: string, over: Partial<SandboxInfo> = {}): SandboxInfo => ({
  id, name: id, pool: "ns/p", phase: "ready", slots: 2, templateHash: template.templateHash, createdAt: new Date(now - 1000), ...over,
});

test("an empty pool creates minSandboxes", () => {
  const plan = planPool(spec, template, { sandboxes: [], leased: new Map(), waitingAcquires: 0, now });
  assert.deepEqual(plan, { create: 1, terminate: [], desired: 1, draining: 0 });
});

test("waiting acquires raise demand, capped by maxConcurrentCreates and maxSandboxes", () => {
  const plan = planPool(spec, template, { sandboxes: [sandbox("a")], leased: new Map([["a", 2]]), waitingAcquires: 7, now });
  assert.equal(plan.desired, 4, "9 slots of demand need 5 sandboxes; max is 4");
  assert.equal(plan.create, 2, "at most two creates in flight");
});

test("failed sandboxes are terminated and replaced", () => {
  const plan = planPool(spec, template, { sandboxes: [sandbox("a", { phase: "failed" })], leased: new Map(), waitingAcquires: 0, now });
  assert.deepEqual(plan.terminate.map((t) => `${t.sandbox.id}:${t.reason}`), ["a:Failed"]);
  assert.equal(plan.create, 1);
});

test("a template change rolls idle sandboxes over and drains leased ones", () => {
  const old = { templateHash: "old" };
  const plan = planPool(spec, template, { sandboxes: [sandbox("idle", old), sandbox("busy", old)], leased: new Map([["busy", 1]]), waitingAcquires: 0, now });
  assert.deepEqual(plan.terminate.map((t) => `${t.sandbox.id}:${t.reason}`), ["idle:Outdated"]);
  assert.equal(plan.draining, 1);
  assert.equal(plan.create, 1, "a current sandbox replaces them");
});

test("idle sandboxes above demand scale down, never leased ones or below min", () => {
  const plan = planPool(spec, template, {
    sandboxes: [sandbox("a"), sandbox("b"), sandbox("c", { createdAt: new Date(now - 10) })],
    leased: new Map([["a", 1]]),
    waitingAcquires: 0,
    now,
  });
  assert.equal(plan.desired, 1);
  assert.deepEqual(plan.terminate.map((t) => t.sandbox.id).sort(), ["b", "c"]);
});

test("a sandbox near the end of its lifetime is replaced before it expires", () => {
  const plan = planPool(spec, template, { sandboxes: [sandbox("a", { createdAt: new Date(now - spec.sandboxLifetimeSeconds * 1000 + 30_000) })], leased: new Map(), waitingAcquires: 0, now });
  assert.deepEqual(plan.terminate.map((t) => `${t.sandbox.id}:${t.reason}`), ["a:Expiring"]);
  assert.equal(plan.create, 1);
});
