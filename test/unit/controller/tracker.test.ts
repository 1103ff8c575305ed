import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { JobTracker } from "../../../src/controller/rolloutjob/tracker.ts";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tracker(items: number, clock = { t: 0 }, dir = mkdtempSync(join(tmpdir(), "tracker-"))) {
  dirs.push(dir);
  const make = () => new JobTracker({ resultsPath: join(dir, "r.jsonl"), statePath: join(dir, "s.json"), items, backoffLimit: 1, leaseTTLMs: 1000, now: () => clock.t });
  return { make, dir, clock };
}

const lease = (a: ReturnType<JobTracker["next"]>) => {
  assert.equal(a.kind, "item");
  return (a as { kind: "item"; lease: { id: string; index: number; attempt: number } }).lease;
};

test("items go out once each, then the runner waits, then the job is done", () => {
  const t = tracker(2).make();
  const a = lease(t.next("r1"));
  const b = lease(t.next("r2"));
  assert.deepEqual([a.index, b.index], [0, 1]);
  assert.equal(t.next("r1").kind, "wait");
  t.submit({ index: 0, attempt: 1, scores: [1, 1], group: {} });
  t.submit({ index: 1, attempt: 1, scores: [1, 0], group: {} });
  assert.equal(t.next("r1").kind, "done");
  const agg = t.aggregates();
  assert.deepEqual([agg.groups, agg.scored, agg.passed, agg.completedIndexes], [2, 4, 3, "0-1"]);
});

test("a retried POST stores the group once", () => {
  const { make, dir } = tracker(1);
  const t = make();
  lease(t.next("r"));
  assert.deepEqual(t.submit({ index: 0, attempt: 1, scores: [1], group: { x: 1 } }), { stored: true });
  assert.deepEqual(t.submit({ index: 0, attempt: 1, scores: [1], group: { x: 1 } }), { stored: false });
  assert.equal(readFileSync(join(dir, "r.jsonl"), "utf8").trim().split("\n").length, 1);
});

test("an item whose runner stops renewing comes back after its lease expires, up to backoffLimit attempts, then fails", () => {
  const { make, clock } = tracker(1);
  const t = make();
  assert.equal(lease(t.next("dead")).attempt, 1);
  clock.t = 999;
  assert.equal(t.next("other").kind, "wait", "not before the lease expires");
  clock.t = 1000;
  assert.equal(lease(t.next("other")).attempt, 2);
  clock.t = 2000;
  assert.equal(t.next("other").kind, "done", "backoffLimit 1: the third attempt is not made");
  assert.equal(t.aggregates().failed, 1);
  assert.equal(t.aggregates().retried, 1);
});

test("a handed-back item does not spend an attempt", () => {
  const t = tracker(1).make();
  const first = lease(t.next("r"));
  t.handBack(first.id);
  assert.equal(lease(t.next("r")).attempt, 1);
});

test("a restarted tracker keeps done items, aggregates and outstanding leases", () => {
  const { make } = tracker(3);
  const t = make();
  lease(t.next("r"));
  const second = lease(t.next("r"));
  t.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  const restarted = make();
  assert.equal(restarted.aggregates().groups, 1);
  assert.equal(restarted.aggregates().running, 1, "item 1 is still leased to its live runner");
  assert.ok(restarted.renew(second.id), "the live runner keeps its item");
  assert.equal(lease(restarted.next("r")).index, 2, "item 1 is not handed out twice");
  assert.deepEqual(restarted.submit({ index: 0, attempt: 1, scores: [1], group: {} }), { stored: false });
});

test("the work lease TTL follows the trajectory timeout, capped, plus a margin", async () => {
  const { workLeaseTTLMs } = await import("../../../src/controller/rolloutjob/desired.ts");
  assert.equal(workLeaseTTLMs({ trajectoryTimeoutSeconds: 5 }), 10_000);
  assert.equal(workLeaseTTLMs({ trajectoryTimeoutSeconds: 1800 }), 65_000);
  const { renewIntervalMs } = await import("../../../src/controller/runners-api/client.ts");
  assert.equal(renewIntervalMs(9000), 3000);
  assert.equal(renewIntervalMs(100), 200);
});
