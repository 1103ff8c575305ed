import { test } from "node:test";
import assert from "node:assert/strict";
import { computePoolStatus, STATUS_IMAGES } from "../../../src/operator/sandboxpool/status.ts";
import type { SandboxInfo } from "../../../src/backends/types.ts";

const sandbox = (name: string, image: string | undefined, phase: SandboxInfo["phase"] = "ready"): SandboxInfo => ({
  id: name,
  name,
  pool: "ns/p",
  phase,
  slots: 4,
  templateHash: "h",
  ...(image === undefined ? {} : { image }),
  createdAt: new Date(0),
});

const statusOf = (sandboxes: SandboxInfo[], leasedBySandbox = new Map<string, number>()) =>
  computePoolStatus({
    generation: 1,
    previous: undefined,
    sandboxes,
    image: "pool-image",
    leasedBySandbox,
    templateHash: "h",
    slotsPerSandbox: 4,
    leased: 0,
    quarantined: 0,
    isolation: undefined,
    isolationMode: "bwrap",
    plan: undefined,
    now: new Date(0),
  });

test("status shows sandboxes per image, most sandboxes first; a sandbox without an image is on the pool's", () => {
  const status = statusOf(
    [
      sandbox("a1", "swe-a"),
      sandbox("a2", "swe-a", "starting"),
      sandbox("b1", "swe-b"),
      sandbox("old", undefined),
      sandbox("f", "swe-c", "failed"),
    ],
    new Map([["a1", 3]]),
  );
  assert.deepEqual(status.images, [
    { image: "swe-a", ready: 1, starting: 1, leased: 3 },
    { image: "pool-image", ready: 1, starting: 0, leased: 0 },
    { image: "swe-b", ready: 1, starting: 0, leased: 0 },
  ]);
  assert.equal(status.sandboxes?.images, 3);
});

test("status lists a bounded number of images and counts them all", () => {
  const many = Array.from({ length: 25 }, (_, n) => sandbox(`s${n}`, `repo-${String(n).padStart(2, "0")}`));
  const status = statusOf(many);
  assert.equal(status.images?.length, STATUS_IMAGES);
  assert.equal(status.sandboxes?.images, 25);
});
