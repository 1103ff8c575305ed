import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { JobTracker } from "../../../src/operator/rolloutjob/tracker.ts";
import { FakeClock } from "../../../src/base/clock.ts";
import { hasTokenRestarts } from "../../../src/rollout/sinks.ts";
import { scoredGroup } from "../../support/scored-group.ts";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tracker(items: number, clock = new FakeClock(), dir = mkdtempSync(join(tmpdir(), "tracker-"))) {
  dirs.push(dir);
  const make = () =>
    new JobTracker({
      resultsPath: join(dir, "r.jsonl"),
      journalPath: join(dir, "journal.jsonl"),
      items,
      backoffLimit: 1,
      leaseTTLMs: 1000,
      clock,
    });
  return { make, dir, clock };
}

const lease = (a: Awaited<ReturnType<JobTracker["next"]>>) => {
  assert.equal(a.kind, "item");
  return (a as { kind: "item"; lease: { id: string; index: number; attempt: number } }).lease;
};

test("items go out once each, then the runner waits, then the job is done", async () => {
  const t = tracker(2).make();
  const a = lease(await t.next("r1"));
  const b = lease(await t.next("r2"));
  assert.deepEqual([a.index, b.index], [0, 1]);
  assert.equal((await t.next("r1")).kind, "wait");
  await t.submit({ index: 0, attempt: 1, scores: [1, 1], group: {} });
  await t.submit({ index: 1, attempt: 1, scores: [1, 0], group: {} });
  assert.equal((await t.next("r1")).kind, "done");
  const agg = t.aggregates();
  assert.deepEqual([agg.groups, agg.scored, agg.passed, agg.completedIndexes], [2, 4, 3, "0-1"]);
});

test("a retried POST stores the group once", async () => {
  const { make, dir } = tracker(1);
  const t = make();
  lease(await t.next("r"));
  assert.deepEqual(await t.submit({ index: 0, attempt: 1, scores: [1], group: { x: 1 } }), { stored: true });
  assert.deepEqual(await t.submit({ index: 0, attempt: 1, scores: [1], group: { x: 1 } }), { stored: false });
  assert.equal(readFileSync(join(dir, "r.jsonl"), "utf8").trim().split("\n").length, 1);
});

test("a duplicate of a group still being written is acknowledged once that group is in the file, and nothing is stored twice", async () => {
  const { make, dir } = tracker(1);
  const t = make();
  lease(await t.next("r"));
  const group = { index: 0, attempt: 1, scores: [1], group: { x: 1 } };
  const first = t.submit(group);
  const duplicate = t.submit(group);
  assert.deepEqual(await duplicate, { stored: false });
  assert.equal(readFileSync(join(dir, "r.jsonl"), "utf8").trim().split("\n").length, 1, "acknowledged: the group is on disk, once");
  assert.deepEqual(await first, { stored: true });
  assert.equal(make().aggregates().groups, 1);
});

test("an item whose runner stops renewing comes back after its lease expires, up to backoffLimit attempts, then fails", async () => {
  const { make, clock } = tracker(1);
  const t = make();
  assert.equal(lease(await t.next("dead")).attempt, 1);
  clock.advance(999);
  assert.equal((await t.next("other")).kind, "wait", "not before the lease expires");
  clock.advance(1);
  assert.equal(lease(await t.next("other")).attempt, 2);
  clock.advance(1000);
  assert.equal((await t.next("other")).kind, "done", "backoffLimit 1: the third attempt is not made");
  assert.equal(t.aggregates().failed, 1);
  assert.equal(t.aggregates().retried, 1);
});

test("a handed-back item does not spend an attempt", async () => {
  const t = tracker(1).make();
  const first = lease(await t.next("r"));
  await t.handBack(first.id);
  assert.equal(lease(await t.next("r")).attempt, 1);
});

test("a restarted tracker keeps done items, aggregates and outstanding leases", async () => {
  const { make } = tracker(3);
  const t = make();
  lease(await t.next("r"));
  const second = lease(await t.next("r"));
  await t.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  const restarted = make();
  assert.equal(restarted.aggregates().groups, 1);
  assert.equal(restarted.aggregates().running, 1, "item 1 is still leased to its live runner");
  assert.ok(restarted.renew(second.id), "the live runner keeps its item");
  assert.equal(lease(await restarted.next("r")).index, 2, "item 1 is not handed out twice");
  assert.deepEqual(await restarted.submit({ index: 0, attempt: 1, scores: [1], group: {} }), { stored: false });
});

test("the work lease TTL follows the trajectory timeout, capped, plus a margin", async () => {
  const { workLeaseTTLMs } = await import("../../../src/operator/rolloutjob/desired.ts");
  assert.equal(workLeaseTTLMs({ trajectoryTimeoutSeconds: 5 }), 10_000);
  assert.equal(workLeaseTTLMs({ trajectoryTimeoutSeconds: 1800 }), 65_000);
  const { renewIntervalMs } = await import("../../../src/runner/client.ts");
  assert.equal(renewIntervalMs(9000), 3000);
  assert.equal(renewIntervalMs(100), 200);
});

test("after a restart every outstanding lease gets a full TTL from then: a runner that outlived the outage is not cut off", async () => {
  const { make, clock } = tracker(2);
  const held = lease(await make().next("r"));
  clock.advance(5000); // long after the lease's original expiry
  const restarted = make();
  assert.equal((await restarted.next("r2")).kind, "item", "item 1 goes out");
  assert.equal((await restarted.next("r2")).kind, "wait", "item 0 is still held");
  assert.ok(restarted.renew(held.id), "the live runner renews with the new controller");
  clock.advance(1000);
  assert.equal(lease(await restarted.next("r3")).index, 0, "a runner that never came back loses the item one TTL after the restart");
});

test("items that came back go out before fresh ones, with their attempts, across a restart", async () => {
  const { make } = tracker(4);
  const t = make();
  const a = lease(await t.next("r"));
  const b = lease(await t.next("r"));
  await t.fail(b.id);
  await t.handBack(a.id);
  const restarted = make();
  const again = [lease(await restarted.next("r")), lease(await restarted.next("r")), lease(await restarted.next("r"))];
  assert.deepEqual(again.map((l) => [l.index, l.attempt]).sort(), [
    [0, 1],
    [1, 2],
    [2, 1],
  ]);
  assert.equal(restarted.aggregates().retried, 1);
});

test("a long job's journal is compacted and a restart still knows attempts, failures and leases", async () => {
  const { make, dir } = tracker(8001);
  const t = make();
  const leases = [];
  for (let i = 0; i < 8000; i++) leases.push(lease(await t.next("r")));
  // 8000 lease lines and 4000 fail lines: past the compaction size.
  for (const l of leases)
    if (l.index % 2 === 0) await t.submit({ index: l.index, attempt: 1, scores: [l.index % 4 === 0 ? 1 : 0], group: {} });
    else await t.fail(l.id);
  const held = lease(await t.next("r"));
  const journal = readFileSync(join(dir, "journal.jsonl"), "utf8").trim().split("\n");
  assert.ok(journal.length < 3000, `compacted (${journal.length} lines)`);
  assert.ok(journal[0]!.startsWith('{"snapshot"'));
  const restarted = make();
  assert.deepEqual(restarted.aggregates(), t.aggregates());
  assert.deepEqual([t.aggregates().groups, t.aggregates().passed, t.aggregates().retried, t.aggregates().running], [4000, 2000, 4000, 1]);
  assert.ok(restarted.renew(held.id), "the lease handed out before the restart is still held");
  const next = lease(await restarted.next("r"));
  assert.deepEqual(
    [next.index % 2, next.attempt],
    [1, 2],
    "a failed item comes back with its spent attempt, after compaction and a restart",
  );
});

test("groups an earlier job with the same results file stored are not this job's", async () => {
  const { dir } = tracker(2);
  const make = (uid: string) =>
    new JobTracker({
      resultsPath: join(dir, "shared.jsonl"),
      journalPath: join(dir, `${uid}.jsonl`),
      jobUid: uid,
      items: 2,
      backoffLimit: 1,
      leaseTTLMs: 1000,
    });
  const first = make("uid-1");
  await first.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  const second = make("uid-2");
  assert.equal(second.aggregates().groups, 0);
  assert.equal(lease(await second.next("r")).index, 0);
  assert.equal(make("uid-1").aggregates().groups, 1, "the first job still sees its own group");
});

test("a group stored after a crash tore the results file's last line survives the next restart, once", async () => {
  const { make, dir } = tracker(3);
  const t = make();
  lease(await t.next("r"));
  lease(await t.next("r"));
  await t.submit({ index: 0, attempt: 1, scores: [1], group: {} });
  // The controller died mid-append of item 1's group: half a line, never acknowledged.
  appendFileSync(join(dir, "r.jsonl"), '{"index":1,"attempt":1,"sco');
  const restarted = make();
  assert.deepEqual(await restarted.submit({ index: 1, attempt: 1, scores: [0], group: {} }), { stored: true });
  const again = make();
  assert.equal(again.aggregates().groups, 2, "the acknowledged group of item 1 is not lost");
  assert.deepEqual(await again.submit({ index: 1, attempt: 2, scores: [1], group: {} }), { stored: false }, "nor stored twice");
  assert.ok(
    readFileSync(join(dir, "r.jsonl"), "utf8")
      .split("\n")
      .slice(0, -1)
      .every((line) => JSON.parse(line)),
    "every line is whole JSON",
  );
});

test("a lease handed out after a crash tore the journal's last line is still held after the next restart", async () => {
  const { make, dir } = tracker(2);
  lease(await make().next("r"));
  appendFileSync(join(dir, "journal.jsonl"), '{"lease":{"id":"torn');
  const held = lease(await make().next("r"));
  const again = make();
  assert.ok(again.renew(held.id), "the lease of item 1 survived");
  assert.equal((await again.next("r")).kind, "wait", "item 1 is not handed out twice");
});

test("groups held back for token restarts are counted, and counted again from the results file after a restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tracker-"));
  dirs.push(dir);
  const make = () =>
    new JobTracker({
      resultsPath: join(dir, "r.jsonl"),
      journalPath: join(dir, "journal.jsonl"),
      items: 2,
      backoffLimit: 1,
      leaseTTLMs: 1000,
      isHeldBack: hasTokenRestarts,
    });
  const t = make();
  const restarted = scoredGroup(0, [1, 0]);
  restarted.metadata.trajectories[0]!.token_restarts = 2;
  await t.submit({ index: 0, attempt: 1, scores: restarted.scores, group: restarted });
  await t.submit({ index: 1, attempt: 1, scores: [1, 0], group: scoredGroup(1, [1, 0]) });
  assert.equal(t.aggregates().heldBack, 1);
  assert.equal(make().aggregates().heldBack, 1);
});
