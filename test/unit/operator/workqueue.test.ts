import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeClock } from "../../../src/base/clock.ts";
import { WorkQueue } from "../../../src/operator/runtime/workqueue.ts";

test("repeated adds of a waiting key coalesce into one item", async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  queue.add("a");
  queue.add("a");
  queue.add("b");
  assert.equal(queue.depth, 2);
  assert.equal(await queue.get(), "a");
  assert.equal(await queue.get(), "b");
});

test("a key added while processing is not handed out again until done, then exactly once", async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  queue.add("a");
  const key = await queue.get();
  queue.add("a");
  queue.add("a");
  assert.equal(queue.depth, 0, "the running key is not queued beside itself");
  queue.done(key!);
  assert.equal(queue.depth, 1);
  assert.equal(await queue.get(), "a");
  queue.done("a");
  assert.equal(queue.depth, 0);
});

test("failing keys back off exponentially per key up to the cap, and forget resets", () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock, baseDelayMs: 10, maxDelayMs: 50 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => queue.addRateLimited("a")),
    [10, 20, 40, 50, 50],
  );
  assert.equal(queue.addRateLimited("b"), 10, "backoff is per key");
  queue.forget("a");
  assert.equal(queue.addRateLimited("a"), 10);
});

test("addAfter fires at the earliest requested time and only once", () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  queue.addAfter("a", 1000);
  queue.addAfter("a", 300);
  queue.addAfter("a", 5000);
  clock.advance(299);
  assert.equal(queue.depth, 0);
  clock.advance(1);
  assert.equal(queue.depth, 1);
  clock.advance(10_000);
  assert.equal(queue.depth, 1, "the later requests were folded into the earliest");
});

test("concurrent workers never process one key at once", async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  const active = new Set<string>();
  let overlaps = 0;
  let runs = 0;
  // Ends the run after the 40th pass, however slow the machine (no wall-clock wait).
  const { promise: fortyRuns, resolve: reachedForty } = Promise.withResolvers<void>();
  const worker = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      if (active.has(key)) overlaps++;
      active.add(key);
      runs++;
      await new Promise((r) => setImmediate(r));
      if (runs < 40) queue.add(key);
      else reachedForty();
      active.delete(key);
      queue.done(key);
    }
  };
  for (const k of ["a", "b", "a", "c"]) queue.add(k);
  const workers = [worker(), worker(), worker(), worker()];
  await fortyRuns;
  queue.shutDown();
  await Promise.all(workers);
  assert.equal(overlaps, 0);
  assert.ok(runs >= 40);
});

test("shutDown wakes waiting workers with undefined and drops delayed keys", async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  queue.addAfter("a", 100);
  const waiting = queue.get();
  queue.shutDown();
  assert.equal(await waiting, undefined);
  assert.equal(clock.pendingTimers, 0);
  queue.add("b");
  assert.equal(queue.depth, 0);
});

test("a requeue further off than a 32-bit setTimeout (ttlSecondsAfterFinished of 30 days) waits instead of firing at once", async () => {
  const queue = new WorkQueue();
  queue.addAfter("finished-job", 30 * 86_400_000);
  // Timers fire in due order: a requeue that overflowed to 1 ms would be handed out before this one fires.
  const first = await Promise.race([queue.get(), new Promise((resolve) => setTimeout(() => resolve("nothing yet"), 20))]);
  queue.shutDown();
  assert.equal(first, "nothing yet");
});
