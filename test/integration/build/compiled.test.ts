import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { before, test } from "node:test";
import { promisify } from "node:util";
import { modulesLoadedBy, packagesOf } from "../../support/loaded-modules.ts";

/** The compiled build the image ships (npm run build), run from dist/ as the image runs it from /app. */
const run = promisify(execFile);
const root = join(import.meta.dirname, "../../..");
const dist = join(root, "dist");

before(async () => {
  await run(process.execPath, [join(root, "scripts/build.ts")]);
});

test("the compiled CLI runs every role's entry (a role's --help imports its code)", async () => {
  for (const role of ["controller", "runner", "sandbox-server", "model-server", "mock-modal"]) {
    const { stdout } = await run(process.execPath, [join(dist, "bin/hermes-rollouts.js"), role, "--help"]);
    assert.match(stdout, new RegExp(`Usage: hermes-rollouts ${role}`));
  }
});

test("the compiled controller loads no TypeScript and client-node and prom-client only as its bundles", async () => {
  const urls = await modulesLoadedBy(join(dist, "src/cli/commands/controller.js"));
  assert.deepEqual(
    urls.filter((url) => url.endsWith(".ts")),
    [],
  );
  const loaded = packagesOf(urls);
  assert.equal(loaded.has("@kubernetes/client-node"), false);
  assert.equal(loaded.has("prom-client"), false);
  assert.ok(urls.some((url) => url.endsWith("/dist/src/operator/kube.js")));
});
