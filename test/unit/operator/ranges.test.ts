import assert from "node:assert/strict";
import { test } from "node:test";
import { compactRanges, compactSortedRanges, parseRanges } from "../../../src/operator/rolloutjob/ranges.ts";

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

test("past its bound the text keeps the first ranges that fit and says more were left out", () => {
  const everyOther = Array.from({ length: 100_000 }, (_, i) => i * 2);
  const text = compactRanges(everyOther, 1000);
  assert.ok(text.length <= 1000, `${text.length} chars`);
  assert.ok(text.startsWith("0,2,4,"));
  assert.ok(text.endsWith(",..."));
  const kept = parseRanges(text);
  assert.deepEqual(kept, everyOther.slice(0, kept.length), "what it keeps is exact");
  assert.ok(kept.length > 150);
  assert.equal(compactRanges([0, 1, 2, 5], 7), "0-2,5", "a text that fits exactly is whole");
  assert.equal(compactRanges([0, 1, 2, 5, 9, 11], 9), "0-2,5,...");
});

test("ascending input (a walk over a bitmap) gives the same text without sorting", () => {
  const done = Array.from({ length: 5000 }, (_, i) => i % 7 !== 3 && i % 11 !== 0);
  function* ascending() {
    for (let i = 0; i < done.length; i++) if (done[i]) yield i;
  }
  const shuffled = [...ascending()].reverse();
  for (const bound of [Infinity, 4000, 50]) assert.equal(compactSortedRanges(ascending(), bound), compactRanges(shuffled, bound));
});
