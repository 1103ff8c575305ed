import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { crdDirectories, referencePath, renderCrds } from "../../../src/api/generate-crds.ts";
import { renderReference } from "../../../src/api/reference.ts";
import { validJobSpecs, validPoolSpecs } from "../../fixtures/api-cases.ts";

const root = new URL("../../../", import.meta.url);

test("checked-in CRDs match a fresh generation from the zod schemas (run `npm run gen:crds`)", () => {
  for (const dir of crdDirectories) {
    for (const { fileName, text } of renderCrds()) {
      assert.equal(readFileSync(new URL(`${dir}/${fileName}`, root), "utf8"), text, `${dir}/${fileName} is stale`);
    }
  }
});

test("the checked-in API reference matches a fresh generation", () => {
  assert.equal(readFileSync(new URL(referencePath, root), "utf8"), renderReference(), `${referencePath} is stale`);
});

test("every spec and status field carries a description for kubectl explain", () => {
  const missing: string[] = [];
  const walk = (schema: Record<string, unknown>, path: string): void => {
    const namedField = path.split(".").length > 2 && !path.endsWith("[]");
    if (namedField && typeof schema.description !== "string") missing.push(path);
    for (const [key, child] of Object.entries((schema.properties ?? {}) as Record<string, Record<string, unknown>>))
      walk(child, `${path}.${key}`);
    if (schema.items) walk(schema.items as Record<string, unknown>, `${path}[]`);
  };
  for (const { fileName, text } of renderCrds()) {
    const crd = parse(text);
    const root = crd.spec.versions[0].schema.openAPIV3Schema;
    walk(root.properties.spec, `${fileName}.spec`);
    walk(root.properties.status, `${fileName}.status`);
  }
  assert.deepEqual(missing, []);
});

test("every schema node is structural: one type per node, or x-kubernetes-preserve-unknown-fields / int-or-string", () => {
  const untyped: string[] = [];
  const walk = (schema: Record<string, unknown>, path: string): void => {
    const open = schema["x-kubernetes-preserve-unknown-fields"] === true || schema["x-kubernetes-int-or-string"] === true;
    if (!open && typeof schema.type !== "string") untyped.push(`${path}: type ${JSON.stringify(schema.type)}`);
    for (const [key, child] of Object.entries((schema.properties ?? {}) as Record<string, Record<string, unknown>>))
      walk(child, `${path}.${key}`);
    if (schema.items) walk(schema.items as Record<string, unknown>, `${path}[]`);
    if (typeof schema.additionalProperties === "object") walk(schema.additionalProperties as Record<string, unknown>, `${path}{}`);
  };
  for (const { fileName, text } of renderCrds()) walk(parse(text).spec.versions[0].schema.openAPIV3Schema, fileName);
  assert.deepEqual(untyped, []);
});

test("valid spec fixtures are named as the apiserver names objects (the CRD suite applies them under these names)", () => {
  const badNames = [...Object.keys(validPoolSpecs), ...Object.keys(validJobSpecs)].filter(
    (name) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name),
  );
  assert.deepEqual(badNames, []);
});
