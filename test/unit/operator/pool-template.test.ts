import assert from "node:assert/strict";
import { test } from "node:test";
import { sandboxPoolSpec } from "../../../src/api/index.ts";
import { poolTemplate } from "../../../src/backends/template.ts";

const spec = sandboxPoolSpec.parse({ backend: "local", slotsPerSandbox: 2, resources: { cpu: "500m", memory: "1Gi" } });

test("the template carries the pool key and parsed resources", () => {
  const t = poolTemplate("ns/p", spec);
  assert.equal(t.pool, "ns/p");
  assert.equal(t.cpu, 0.5);
  assert.equal(t.memoryMiB, 1024);
  assert.equal(t.slots, 2);
});

test("the hash changes with image or slots and not with scaling fields", () => {
  const base = poolTemplate("ns/p", spec).templateHash;
  assert.notEqual(poolTemplate("ns/p", { ...spec, image: "other:1" }).templateHash, base);
  assert.notEqual(poolTemplate("ns/p", { ...spec, slotsPerSandbox: 3 }).templateHash, base);
  assert.equal(poolTemplate("ns/p", { ...spec, maxSandboxes: 99, minSandboxes: 3 }).templateHash, base);
});
