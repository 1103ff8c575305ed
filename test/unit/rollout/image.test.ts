import assert from "node:assert/strict";
import { test } from "node:test";
import { itemImage } from "../../../src/rollout/image.ts";

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
