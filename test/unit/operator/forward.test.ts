import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ResultsForwarder } from "../../../src/operator/rolloutjob/forward.ts";
import { countLinesFrom, readLineAt } from "../../../src/operator/rolloutjob/lines.ts";
import type { ScoredDataGroup } from "../../../src/rollout/scored.ts";
import type { ScoredSink } from "../../../src/rollout/sinks.ts";

const dir = mkdtempSync(join(tmpdir(), "forward-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("lines are read by byte offset across chunk boundaries, multi-byte text included; a torn last line is not a line", async () => {
  const path = join(dir, "lines.jsonl");
  const long = `${"ü".repeat(70_000)}✓`; // over two 64 KiB chunks, with characters split across them
  writeFileSync(path, `first\n${long}\nthird\ntorn`);
  const first = (await readLineAt(path, 0))!;
  const second = (await readLineAt(path, first.end))!;
  const third = (await readLineAt(path, second.end))!;
  assert.deepEqual([first.line, second.line === long, third.line], ["first", true, "third"]);
  assert.equal(await readLineAt(path, third.end), undefined);
  assert.equal(await countLinesFrom(path, 0), 3);
  assert.equal(await countLinesFrom(path, first.end), 2);
  assert.equal(await countLinesFrom(join(dir, "missing"), 0), 0);
});

/** A trainer that takes groups, or refuses them while `down`. */
function trainer() {
  const got: number[] = [];
  const state = { down: false };
  const sink: ScoredSink = {
    location: "http://trainer",
    open: async () => {},
    write: async (group: ScoredDataGroup) => {
      if (state.down) throw new Error("trainer down");
      got.push((group as unknown as { n: number }).n);
    },
    close: async () => {},
  };
  return { sink, got, state };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(check(), "timed out");
}

test("groups go out in stored order from the results file, and a restart resumes after the last one acknowledged", async () => {
  const resultsPath = join(dir, "results.jsonl");
  const forwardedPath = join(dir, "forwarded");
  const store = (index: number) =>
    appendFileSync(resultsPath, `${JSON.stringify({ index, attempt: 1, scores: [1], group: { n: index } })}\n`);
  const first = trainer();
  const forwarder = await ResultsForwarder.open({ sink: first.sink, resultsPath, forwardedPath, retryDelayMs: 5 });
  forwarder.start();
  for (const index of [3, 0, 2]) {
    store(index);
    forwarder.stored();
  }
  await until(() => first.got.length === 3);
  assert.deepEqual(first.got, [3, 0, 2], "the order they were stored in");
  first.state.down = true;
  for (const index of [1, 4]) {
    store(index);
    forwarder.stored();
  }
  await until(() => forwarder.lastError !== undefined);
  assert.equal(forwarder.pending, 2);
  await forwarder.close();

  const second = trainer();
  const restarted = await ResultsForwarder.open({ sink: second.sink, resultsPath, forwardedPath, retryDelayMs: 5 });
  assert.equal(restarted.pending, 2, "the backlog is counted from the watermark, not held in memory");
  restarted.start();
  await until(() => restarted.pending === 0);
  assert.deepEqual(second.got, [1, 4], "nothing acknowledged before the restart is sent again");
  await restarted.close();
});
