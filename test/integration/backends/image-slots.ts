/**
 * One suite, run against every backend that honours SandboxTemplate.image in its slots (local, Modal through the
 * real SDK against the mock): a sandbox per image of TWO_IMAGES, and what a slot of each sees.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ExecRequest, SandboxBackend, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";
import { TWO_IMAGES, TWO_IMAGES_WORKDIR } from "../../support/oci-images.ts";

export interface ImageSlotsEnv {
  backend: SandboxBackend;
  /** A template whose image is the test image `name` (2 slots). */
  templateFor(name: keyof typeof TWO_IMAGES): SandboxTemplate;
  teardown(): Promise<void>;
}

export function runImageSlotSuite(name: string, setup: () => Promise<ImageSlotsEnv>): void {
  describe(`${name}: a slot sees its sandbox's image`, () => {
    let env: ImageSlotsEnv;
    const sandboxes: Partial<Record<keyof typeof TWO_IMAGES, SandboxInfo>> = {};
    const run = async (image: keyof typeof TWO_IMAGES, slot: number, command: string, extra: Partial<ExecRequest> = {}) => {
      const sandbox = sandboxes[image];
      assert.ok(sandbox);
      return env.backend.exec(sandbox, { slot, command: ["sh", "-c", command], timeoutMs: 30_000, ...extra });
    };
    const output = async (image: keyof typeof TWO_IMAGES, slot: number, command: string) => {
      const result = await run(image, slot, command);
      assert.equal(result.exitCode, 0, `${command}: ${result.stderr}`);
      return result.stdout;
    };

    before(async () => {
      env = await setup();
      const [a, b] = await Promise.all([
        env.backend.create("image-a", env.templateFor("a")),
        env.backend.create("image-b", env.templateFor("b")),
      ]);
      sandboxes.a = a;
      sandboxes.b = b;
    });

    after(async () => {
      for (const sandbox of Object.values(sandboxes)) await env.backend.terminate(sandbox);
      await env.backend.close();
      await env.teardown();
    });

    test("each sandbox's slots see their image's files at the same absolute paths and its interpreter package", async () => {
      for (const image of ["a", "b"] as const) {
        assert.equal(await output(image, 0, "cat /etc/which"), `${TWO_IMAGES[image].which}\n`);
        assert.equal(await output(image, 1, "greet"), `${TWO_IMAGES[image].greeting}\n`);
      }
    });

    test("the slot's workspace is the work dir: pwd, HERMES_WORKSPACE, and the image's own files there are hidden", async () => {
      assert.equal(await output("a", 0, 'pwd; echo "$HERMES_WORKSPACE"; ls -A'), `${TWO_IMAGES_WORKDIR}\n${TWO_IMAGES_WORKDIR}\n`);
    });

    test("writes land in the slot's workspace only; the image root is read-only; another slot sees neither", async () => {
      assert.equal(await output("b", 0, `echo mine > ${TWO_IMAGES_WORKDIR}/out && echo private > /tmp/t && cat out`), "mine\n");
      assert.equal(Buffer.from(await env.backend.readFile(sandboxes.b!, 0, "out")).toString(), "mine\n");
      assert.equal(Buffer.from(await env.backend.readFile(sandboxes.b!, 0, `${TWO_IMAGES_WORKDIR}/out`)).toString(), "mine\n");
      const readOnly = await run("b", 0, "echo x > /etc/which || touch /new-file");
      assert.notEqual(readOnly.exitCode, 0, "the image root is read-only");
      assert.match(readOnly.stderr, /Read-only file system/);
      assert.equal(await output("b", 0, "cat /etc/which"), "B\n");
      const other = await run("b", 1, `test -e ${TWO_IMAGES_WORKDIR}/out || test -e /tmp/t`);
      assert.equal(other.exitCode, 1, "slot 1 sees neither slot 0's workspace nor its /tmp");
      await env.backend.writeFile(sandboxes.b!, 1, "given.txt", "from the backend\n");
      assert.equal(await output("b", 1, `cat ${TWO_IMAGES_WORKDIR}/given.txt`), "from the backend\n");
      await env.backend.resetSlot(sandboxes.b!, 0);
      assert.equal(await output("b", 0, "ls -A"), "", "reset empties the workspace");
    });

    test("a trusted step writes the cache at the same workspace path, and slots read it", async () => {
      const trusted = await run("a", 0, 'echo "$HERMES_WORKSPACE" && echo filled > "$HERMES_CACHE_DIR/filled"', { trusted: true });
      assert.equal(trusted.exitCode, 0, trusted.stderr);
      assert.equal(trusted.stdout, `${TWO_IMAGES_WORKDIR}\n`);
      assert.equal(await output("a", 1, 'cat "$HERMES_CACHE_DIR/filled"'), "filled\n");
    });
  });
}
