import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { ProgressCounters, progressView } from "../../../src/local/progress.ts";

/** A terminal that records what the live bar draws. */
function fakeTerminal(): { stream: NodeJS.WriteStream; lastFrame: () => string } {
  let output = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY: true, columns: 200 });
  // A frame starts where the bar moves the cursor back to column 1.
  return { stream, lastFrame: () => output.split("\x1b[1G").at(-1) ?? "" };
}

function counters(fields: Partial<Pick<ProgressCounters, "items" | "total" | "groups" | "failed">>): ProgressCounters {
  return Object.assign(new ProgressCounters(), fields);
}

test("live bar while the dataset's size is unknown: done/? and no made-up total or ETA", () => {
  const { stream, lastFrame } = fakeTerminal();
  const view = progressView(counters({ items: 5, groups: 2 }), stream);
  view.stop();
  const frame = lastFrame();
  assert.match(frame, /^2\/\? items /, "no bar until the total is known");
  assert.match(frame, /ETA \?/);
  assert.doesNotMatch(frame, /2\/5|NFs|INF|NULL/);
});

test("live bar once the size is known: done/total", () => {
  const { stream, lastFrame } = fakeTerminal();
  const progress = counters({ items: 8, total: 8, groups: 3, failed: 1 });
  const view = progressView(progress, stream);
  view.stop();
  assert.match(lastFrame(), / 4\/8 items .*failed 1/);
});

test("without a terminal (CI logs, pipes): one plain line per finished item, no escape codes", () => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  const progress = counters({ items: 3, groups: 1 });
  const view = progressView(progress, stream);
  view.update();
  view.itemFinished("item-a: scores [1]");
  view.stop();
  assert.deepEqual(lines.length, 1);
  assert.match(lines[0]!, /^\[1\/\?\] item-a: scores \[1\] \| .*ETA \?\n$/);
  assert.doesNotMatch(lines[0]!, /\x1b/);
});

test("running counts trajectories that hold a place under the gate, and drops back to 0 after failures", async () => {
  const { runGroup, Semaphore } = await import("../../../src/rollout/group.ts");
  const { GroupFailedError } = await import("../../../src/base/errors.ts");
  const { getEnvironment } = await import("../../../src/envs/index.ts");
  const progress = new ProgressCounters();
  let most = 0;
  const failing = {
    // Not an infrastructure error: each trajectory ends at once, without a retry.
    acquire: async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error("bad item");
    },
  };
  const env = getEnvironment("shell-task");
  await assert.rejects(
    runGroup(env.parseItem({ id: "t", goal: "g", check: "true" }), 0, {
      env,
      slots: failing,
      model: {} as never,
      format: "auto",
      generation: { temperature: 1, top_p: 1, max_tokens: 16 },
      limits: { maxTurns: 1, toolTimeoutSeconds: 1, trajectoryTimeoutSeconds: 1, maxTokenLength: 1000, maxToolOutputBytes: 1000 },
      groupSize: 3,
      backoffLimit: 0,
      gate: new Semaphore(1),
      onEvent: (event) => {
        progress.onEvent(event);
        most = Math.max(most, progress.running);
      },
    }),
    GroupFailedError,
  );
  assert.equal(most, 1, "never more running than the gate lets through");
  assert.equal(progress.running, 0, "every failed trajectory left the count");
});
