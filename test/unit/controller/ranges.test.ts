import assert from "node:assert/strict";
import { test } from "node:test";
import { compactRanges, parseRanges } from "../../../src/controller/rolloutjob/ranges.ts";

test("indexes compress into sorted ranges", () => {
  assert.equal(compactRanges([]), "");
  assert.equal(compactRanges([5]), "5");
  assert.equal(compactRanges([3, 1, 2, 105, 0, 7, 8]), "0-3,7-8,105");
  assert.equal(compactRanges([1, 1, 2]), "1-2");
});

test("100k done items out of order stay one short string", () => {
  const indexes = Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 100_000);
  assert.equal(compactRanges(indexes), "0-99999");
});

test("parse is the inverse of compact", () => {
  const indexes = [0, 1, 2, 9, 11, 12, 40];
  assert.deepEqual(parseRanges(compactRanges(indexes)), indexes);
});
