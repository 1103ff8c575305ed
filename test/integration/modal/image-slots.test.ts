import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
