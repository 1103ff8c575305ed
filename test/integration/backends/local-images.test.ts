import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { buildTestImage, twoImageSpec } from "../../support/oci-images.ts";
import { runImageSlotSuite } from "./image-slots.ts";

function template(pool: string, image: string, extra: Partial<SandboxTemplate> = {}): SandboxTemplate {
  return {
    pool,
    image,
    slots: 2,
    cpu: 1,
    memoryMiB: 512,
    lifetimeSeconds: 3600,
    idleTimeoutSeconds: 600,
    templateHash: "images-v1",
    ...extra,
  };
}

async function twoImages(dir: string): Promise<{ a: string; b: string }> {
  const layout = join(dir, "layout");
  return { a: await buildTestImage(layout, "a", twoImageSpec("a")), b: await buildTestImage(layout, "b", twoImageSpec("b")) };
}

// Real bwrap, real skopeo + umoci: each local sandbox of an OCI image runs its slots in that image's root.
runImageSlotSuite("local", async () => {
  const dir = await mkdtemp(join(tmpdir(), "local-images-"));
  const images = await twoImages(dir);
  const backend = await LocalBackend.open({ rootDir: join(dir, "sandboxes") });
  return {
    backend,
    templateFor: (name) => template("images", images[name]),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});

describe("local: which image a template names", () => {
  test("a name without a transport (the pool's default python:3.11-slim) is the host's view; an override moves the work dir", async () => {
    const dir = await mkdtemp(join(tmpdir(), "local-images-"));
    const backend = await LocalBackend.open({ rootDir: join(dir, "sandboxes") });
    try {
      const images = await twoImages(dir);
      const host = await backend.create("host", template("host", "python:3.11-slim"));
      const onHost = await backend.exec(host, {
        slot: 0,
        command: ["sh", "-c", "pwd; test -e /opt/greet || echo host"],
        timeoutMs: 30_000,
      });
      assert.equal(onHost.stdout, "/workspace\nhost\n");
      const moved = await backend.create("moved", template("moved", images.a, { workdir: "/srv/work" }));
      const inImage = await backend.exec(moved, { slot: 0, command: ["sh", "-c", "pwd; cat /etc/which"], timeoutMs: 30_000 });
      assert.equal(inImage.stdout, "/srv/work\nA\n");
      // Trusted steps keep the host's tools (git, which the image lacks).
      const trusted = await backend.exec(moved, { slot: 0, command: ["git", "--version"], timeoutMs: 30_000, trusted: true });
      assert.equal(trusted.exitCode, 0, trusted.stderr);
      assert.deepEqual(await readdir(join(dir, "sandboxes", ".images")).then((entries) => entries.length), 1, "one unpack of image a");
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("under isolation none an image is refused, naming the field", async () => {
    const dir = await mkdtemp(join(tmpdir(), "local-images-"));
    const backend = await LocalBackend.open({ rootDir: join(dir, "sandboxes"), isolation: { mode: "none", network: "host" } });
    try {
      const images = await twoImages(dir);
      await assert.rejects(backend.create("refused", template("refused", images.a)), {
        name: "SandboxError",
        message: /isolation bwrap.*spec\.isolation\.mode is none/,
      });
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
