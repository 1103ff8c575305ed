import assert from "node:assert/strict";
import { test } from "node:test";
import { imageHistogram, itemImage } from "../../../src/rollout/image.ts";
import { readAhead } from "../../../src/rollout/driver.ts";

test("without a template: the row's image_name, else undefined (the pool's image)", () => {
  assert.equal(
    itemImage(undefined, { image_name: "jyangballin/swesmith.x86_64.pallets__click.fde47b4b" }),
    "jyangballin/swesmith.x86_64.pallets__click.fde47b4b",
  );
  assert.equal(itemImage(undefined, { image_name: "" }), undefined);
  assert.equal(itemImage(undefined, { instance_id: "x" }), undefined);
  assert.equal(itemImage(undefined, "not an object"), undefined);
});

test("a template is filled from the row's top-level fields, image_name or not", () => {
  const row = { repo: "pallets__click", version: 8, image_name: "ignored" };
  assert.equal(itemImage("registry.example/swesmith.{{repo}}:{{ version }}", row), "registry.example/swesmith.pallets__click:8");
  assert.equal(itemImage("localhost/one:1", row), "localhost/one:1");
});

test("a placeholder the row cannot fill makes the item invalid, naming the field", () => {
  assert.throws(() => itemImage("r/{{repo}}", { repo: { nested: true } }), {
    code: "HR_ITEM_INVALID",
    message: "spec.environment.image: the row has no text field repo for {{repo}}",
  });
  assert.throws(() => itemImage("r/{{tag}}", {}), { code: "HR_ITEM_INVALID", message: /no text field tag/ });
});

test("a job's image histogram counts items per image; rows on the pool's image or that cannot fill the template are left out", () => {
  const rows = [{ image_name: "swe/a" }, { image_name: "swe/b" }, { image_name: "swe/a" }, {}, { other: 1 }];
  assert.deepEqual(
    [...imageHistogram(undefined, rows)],
    [
      ["swe/a", 2],
      ["swe/b", 1],
    ],
  );
  assert.deepEqual([...imageHistogram("reg/{{repo}}:1", [{ repo: "x" }, { nope: 1 }, { repo: "x" }])], [["reg/x:1", 2]]);
});

test("reading ahead gives the first rows now and every row, once, to the stream", async () => {
  async function* rows(): AsyncGenerator<number> {
    for (let n = 0; n < 5; n++) yield n;
  }
  const ahead = await readAhead(rows(), 3);
  assert.deepEqual(ahead.head, [0, 1, 2]);
  const all: unknown[] = [];
  for await (const row of ahead.rows) all.push(row);
  assert.deepEqual(all, [0, 1, 2, 3, 4]);
  const short = await readAhead(rows(), 10);
  assert.equal(short.head.length, 5);
});
