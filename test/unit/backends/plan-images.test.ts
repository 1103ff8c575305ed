import { test } from "node:test";
import assert from "node:assert/strict";
import { planSandboxes, type ObservedSandbox, type PlanInput } from "../../../src/backends/slots/plan.ts";
import { chooseSandbox } from "../../../src/backends/slots/placement.ts";
import { prewarmImages } from "../../../src/backends/slots/images.ts";

const now = Date.parse("2026-01-01T00:10:00Z");
/** A sandbox of `image` (hash `h-<image>`), created n seconds after midnight for sandbox `<image><n>`. */
const sb = (name: string, image: string, extra: Partial<ObservedSandbox> = {}): ObservedSandbox => ({
  name,
  image,
  phase: "ready",
  templateHash: `h-${image}`,
  leasedSlots: 0,
  createdAt: new Date(Date.parse("2026-01-01") + Number(name.replace(/\D/g, "") || 0) * 1000),
  ...extra,
});
const waiting = (entries: [string, number, number][]) => new Map(entries.map(([image, count, since]) => [image, { count, since }]));
const plan = (input: Partial<PlanInput>) =>
  planSandboxes({
    observed: [],
    templateHash: "h-pool",
    image: "pool",
    templateHashOf: (image) => `h-${image}`,
    min: 0,
    max: 4,
    slotsPerSandbox: 4,
    waitingAcquirers: [...(input.waitingByImage?.values() ?? [])].reduce((total, w) => total + w.count, 0),
    replace: new Set(),
    inFlightCreates: 0,
    maxConcurrentCreates: 4,
    allowScaleDown: true,
    lifetimeSeconds: 3600,
    now,
    ...input,
  });

test("per image: an acquire for an image with no sandbox creates one of that image; the pool's min stays on its image", () => {
  const got = plan({ min: 1, waitingByImage: waiting([["swe-a", 2, now]]) });
  assert.deepEqual(got.creates.sort(), ["pool", "swe-a"]);
});

test("per image: a sandbox of another image does not serve a waiter, and is no stale one", () => {
  const got = plan({ observed: [sb("a1", "swe-a", { leasedSlots: 4 })], waitingByImage: waiting([["swe-b", 1, now]]) });
  assert.deepEqual(got.creates, ["swe-b"]);
  assert.deepEqual(got.terminate, []);
});

test("caps: creates over all images stay within maxSandboxes; the images with the fewest sandboxes get them first", () => {
  const got = plan({
    max: 4,
    observed: [sb("a1", "swe-a", { leasedSlots: 4 })],
    waitingByImage: waiting([
      ["swe-a", 8, now - 5000],
      ["swe-b", 8, now - 1000],
      ["swe-c", 8, now - 2000],
    ]),
  });
  // a has one; c (waiting longer) and b get one each before a gets its second: 4 sandboxes in all.
  assert.deepEqual(got.creates, ["swe-c", "swe-b", "swe-a"]);
  assert.equal(got.desired, 4);
});

test("fairness: at maxSandboxes, the longest-waiting image gets the one free place", () => {
  const observed = [sb("a1", "swe-a", { leasedSlots: 4 }), sb("a2", "swe-a", { leasedSlots: 4 }), sb("a3", "swe-a", { leasedSlots: 4 })];
  const got = plan({
    observed,
    waitingByImage: waiting([
      ["swe-b", 1, now - 1000],
      ["swe-c", 1, now - 9000],
    ]),
  });
  assert.deepEqual(got.creates, ["swe-c"]);
});

test("LRU: at maxSandboxes, an idle sandbox of the least recently used image goes for a waiting image", () => {
  const observed = [sb("a1", "swe-a"), sb("b2", "swe-b"), sb("c3", "swe-c", { leasedSlots: 1 }), sb("d4", "swe-d", { leasedSlots: 1 })];
  const warmImages = new Map([
    ["swe-a", { sandboxes: 1, lastUsedAt: now - 60_000 }],
    ["swe-b", { sandboxes: 1, lastUsedAt: now - 300_000 }],
  ]);
  const got = plan({ observed, warmImages, waitingByImage: waiting([["swe-e", 1, now]]) });
  assert.deepEqual(got.terminate, [{ name: "b2", reason: "evicted" }]);
  assert.deepEqual(got.creates, ["swe-e"]);
});

test("LRU: a sandbox with a lease is never evicted", () => {
  const observed = [1, 2, 3, 4].map((n) => sb(`a${n}`, "swe-a", { leasedSlots: 1 }));
  const got = plan({ observed, waitingByImage: waiting([["swe-b", 1, now]]) });
  assert.deepEqual(got.terminate, []);
  assert.equal(got.create, 0);
});

test("fairness: a new image does not starve behind a busy one: a busy sandbox over its share is emptied, then evicted", () => {
  const busy = [1, 2, 3, 4].map((n) => sb(`a${n}`, "swe-a", { leasedSlots: n }));
  const input = {
    waitingByImage: waiting([
      ["swe-a", 10, now - 9000],
      ["swe-b", 1, now],
    ]),
  };
  const first = plan({ ...input, observed: busy });
  // Fair shares of 4: a 3, b 1. The sandbox with fewest leases stops taking new ones.
  assert.deepEqual(first.evicting, ["a1"]);
  assert.equal(first.create, 0);
  // Once it has emptied it is evicted and b's sandbox is created in its place.
  const emptied = busy.map((sandbox) => (sandbox.name === "a1" ? { ...sandbox, leasedSlots: 0 } : sandbox));
  const second = plan({ ...input, observed: emptied });
  assert.deepEqual(second.terminate, [{ name: "a1", reason: "evicted" }]);
  assert.deepEqual(second.creates, ["swe-b"]);
  // With b served, nothing is emptied any more.
  const served = [...emptied.filter((s) => s.name !== "a1"), sb("b5", "swe-b", { leasedSlots: 1 })];
  assert.deepEqual(plan({ waitingByImage: waiting([["swe-a", 10, now - 9000]]), observed: served }).evicting, []);
});

test("warm per image: minSandboxesPerImage keeps recently used images warm within max; idle ones of unused images go as surplus", () => {
  const warmImages = new Map([
    ["swe-a", { sandboxes: 1, lastUsedAt: now - 1000 }],
    ["swe-b", { sandboxes: 1, lastUsedAt: now - 2000 }],
  ]);
  const got = plan({ warmImages, observed: [sb("a1", "swe-a"), sb("z2", "swe-z")] });
  assert.deepEqual(got.creates, ["swe-b"]);
  assert.deepEqual(got.terminate, [{ name: "z2", reason: "surplus" }]);
});

test("warm per image: floors beyond maxSandboxes go to the most recently used images", () => {
  const warmImages = new Map([
    ["old", { sandboxes: 2, lastUsedAt: now - 5000 }],
    ["new", { sandboxes: 2, lastUsedAt: now - 1000 }],
    ["mid", { sandboxes: 2, lastUsedAt: now - 3000 }],
  ]);
  const got = plan({ max: 3, warmImages });
  assert.deepEqual(got.creates.sort(), ["mid", "new", "old"]);
  const tight = plan({ max: 2, warmImages });
  assert.deepEqual(tight.creates.sort(), ["mid", "new"]);
});

test("a sandbox of another image on an old template rolls over like the pool's own", () => {
  const got = plan({
    observed: [sb("a1", "swe-a", { templateHash: "h-old" })],
    warmImages: new Map([["swe-a", { sandboxes: 1, lastUsedAt: now }]]),
  });
  assert.deepEqual(got.terminate, [{ name: "a1", reason: "stale" }]);
  assert.deepEqual(got.creates, ["swe-a"]);
});

test("in-flight creates count for their own image", () => {
  const got = plan({
    waitingByImage: waiting([
      ["swe-a", 1, now],
      ["swe-b", 1, now],
    ]),
    inFlightCreates: 1,
    inFlightByImage: new Map([["swe-a", 1]]),
  });
  assert.deepEqual(got.creates, ["swe-b"]);
});

test("group placement: a group's leases go where the group already is, a new group to the emptiest sandbox", () => {
  const candidates = [
    { name: "s1", rank: 0, free: 1, groupLeases: 0 },
    { name: "s2", rank: 0, free: 3, groupLeases: 0 },
    { name: "s3", rank: 0, free: 2, groupLeases: 2 },
    { name: "old", rank: 1, free: 4, groupLeases: 0 },
  ];
  assert.equal(chooseSandbox(candidates, true), "s3");
  assert.equal(
    chooseSandbox(
      candidates.map((c) => ({ ...c, groupLeases: 0 })),
      true,
    ),
    "s2",
  );
  assert.equal(chooseSandbox(candidates, false), "s1", "without a group: the fullest, keeping whole sandboxes for groups");
  assert.equal(
    chooseSandbox(
      [
        { name: "old", rank: 1, free: 4, groupLeases: 3 },
        { name: "new", rank: 0, free: 1, groupLeases: 0 },
      ],
      true,
    ),
    "new",
  );
  assert.equal(chooseSandbox([{ name: "full", rank: 0, free: 0, groupLeases: 3 }], true), undefined);
});

test("pre-warm from a job's image histogram: the most needed images first, a group's sandboxes each, within maxSandboxes", () => {
  const histogram = new Map([
    ["rare", 1],
    ["common", 40],
    ["mid", 12],
    ["none", 0],
  ]);
  assert.deepEqual(
    [...prewarmImages(histogram, { maxSandboxes: 10, slotsPerSandbox: 4, groupSize: 8, minPerImage: 0 })],
    [
      ["common", 2],
      ["mid", 2],
      ["rare", 2],
    ],
  );
  assert.deepEqual(
    [...prewarmImages(histogram, { maxSandboxes: 3, slotsPerSandbox: 4, groupSize: 8, minPerImage: 0 })],
    [
      ["common", 2],
      ["mid", 1],
    ],
  );
  assert.deepEqual([...prewarmImages(histogram, { maxSandboxes: 10, slotsPerSandbox: 8, groupSize: 4, minPerImage: 0 })].length, 3);
});
