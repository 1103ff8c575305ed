import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModalBackend } from "../../../src/backends/modal/backend.ts";
import { imageEntryName } from "../../../src/testbeds/mock-modal/images.ts";
import { buildTestImage, TWO_IMAGES_WORKDIR, twoImageSpec } from "../../support/oci-images.ts";
import { mockTemplate, startMockModalBackend } from "../../support/modal.ts";
import { runImageSlotSuite } from "../backends/image-slots.ts";

const REGISTRY_NAMES = { a: "localhost/image-slots-a:1", b: "localhost/image-slots-b:1" } as const;

// The real modal@0.11.1 SDK against the mock serving the two images: the backend creates each sandbox with
// images.fromRegistry(template.image), and its bwrap slots see that container's root (the pool sets a slot workdir).
runImageSlotSuite("modal (real SDK against mock-modal)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "modal-image-slots-"));
  const imagesDir = join(dir, "images");
  for (const name of ["a", "b"] as const)
    await buildTestImage(join(imagesDir, imageEntryName(REGISTRY_NAMES[name])), name, twoImageSpec(name));
  const { backend, mock } = await startMockModalBackend({ mock: { imagesDir, dataDir: join(dir, "mock") } });
  return {
    backend,
    templateFor: (name) => mockTemplate("image-slots", { image: REGISTRY_NAMES[name], workdir: TWO_IMAGES_WORKDIR }),
    teardown: async () => {
      await mock.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

test("a backend that did not create the sandbox (a restarted controller) finds its slot workdir in the tags", async () => {
  const dir = await mkdtemp(join(tmpdir(), "modal-image-slots-"));
  const imagesDir = join(dir, "images");
  await buildTestImage(join(imagesDir, imageEntryName(REGISTRY_NAMES.a)), "a", twoImageSpec("a"));
  const first = await startMockModalBackend({ mock: { imagesDir, dataDir: join(dir, "mock") } });
  const second = new ModalBackend({ appName: "hermes-test", maxThrottleWaitSecs: 10, ...first.connection });
  try {
    const sandbox = await first.backend.create("restart", mockTemplate("image-restart", { image: REGISTRY_NAMES.a, workdir: "/srv/w" }));
    const result = await second.exec(sandbox, { slot: 1, command: ["sh", "-c", "pwd; cat /etc/which"], timeoutMs: 30_000 });
    assert.equal(result.stdout, "/srv/w\nA\n", result.stderr);
  } finally {
    await second.close();
    await first.close();
    await rm(dir, { recursive: true, force: true });
  }
});
