import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { FakeClock } from "../../../src/base/clock.ts";
import { SupervisedInformer, type SourceInformer } from "../../../src/operator/runtime/informer.ts";

/** An informer double that records starts and lets the test emit what client-node emits. */
function fakeInformer(objects: KubernetesObject[]) {
  const emitter = new EventEmitter();
  const state = { starts: 0, failNextStart: 0 };
  const informer = {
    on: (verb: string, cb: (...args: unknown[]) => void) => emitter.on(verb, cb),
    off: (verb: string, cb: (...args: unknown[]) => void) => emitter.off(verb, cb),
    start: async () => {
      state.starts++;
      if (state.failNextStart > 0) {
        state.failNextStart--;
        throw new Error("connection refused");
      }
      emitter.emit("connect");
    },
    stop: async () => {},
    get: (name: string) => objects.find((o) => o.metadata?.name === name),
    list: () => objects,
  } as unknown as SourceInformer<KubernetesObject>;
  return { informer, emitter, state };
}

test("a watch that stops on error is restarted after a jittered backoff that grows", async () => {
  const clock = new FakeClock();
  const { informer, emitter, state } = fakeInformer([]);
  let restarts = 0;
  const sup = new SupervisedInformer({
    resource: "pods",
    informer,
    onChange: () => {},
    clock,
    random: () => 0,
    onRestart: () => restarts++,
  });
  await sup.start();
  assert.equal(state.starts, 1);
  state.failNextStart = 1;
  emitter.emit("error", new Error("ECONNRESET"));
  clock.advance(499);
  assert.equal(state.starts, 1, "no tight restart loop");
  clock.advance(1);
  assert.equal(state.starts, 2);
  await new Promise((r) => setImmediate(r));
  // that restart failed: the next attempt waits twice as long (jitter 0 gives half the base)
  clock.advance(999);
  assert.equal(state.starts, 2);
  clock.advance(1);
  assert.equal(state.starts, 3);
  assert.equal(restarts, 2);
  await sup.stop();
});

test("periodic resync re-delivers every cached object and stops with the supervisor", async () => {
  const clock = new FakeClock();
  const objects = [{ metadata: { name: "a" } }, { metadata: { name: "b" } }];
  const { informer } = fakeInformer(objects);
  const seen: string[] = [];
  const sup = new SupervisedInformer({
    resource: "pools",
    informer,
    onChange: (o, e) => seen.push(`${e}:${o.metadata?.name}`),
    clock,
    resyncMs: 1000,
  });
  await sup.start();
  assert.ok(sup.synced);
  clock.advance(2000);
  assert.deepEqual(seen, ["resync:a", "resync:b", "resync:a", "resync:b"]);
  await sup.stop();
  clock.advance(5000);
  assert.equal(seen.length, 4);
});

test("watch events reach the handler as triggers", async () => {
  const { informer, emitter } = fakeInformer([]);
  const seen: string[] = [];
  const sup = new SupervisedInformer({
    resource: "pods",
    informer,
    onChange: (o, e) => seen.push(`${e}:${o.metadata?.name}`),
    clock: new FakeClock(),
  });
  await sup.start();
  emitter.emit("add", { metadata: { name: "x" } });
  emitter.emit("delete", { metadata: { name: "x" } });
  assert.deepEqual(seen, ["add:x", "delete:x"]);
  await sup.stop();
});

test("an explicitly undefined resync interval falls back to the default instead of spinning", async () => {
  const clock = new FakeClock();
  const { informer } = fakeInformer([{ metadata: { name: "a" } }]);
  let resyncs = 0;
  const sup = new SupervisedInformer({ resource: "pools", informer, onChange: () => resyncs++, clock, resyncMs: undefined });
  await sup.start();
  clock.advance(299_999);
  assert.equal(resyncs, 0);
  clock.advance(1);
  assert.equal(resyncs, 1);
  await sup.stop();
});
