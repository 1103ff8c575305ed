import { access } from "node:fs/promises";
import { join } from "node:path";
import { ImageCache, imageReferenceOfPath, type UnpackedImage } from "../../backends/images/unpack.ts";
import { errorMessage } from "../../base/errors.ts";

/**
 * Images the mock serves. The mock has no registry: `images.fromRegistry(tag)` (which the SDK sends as an image
 * definition whose first Dockerfile command is `FROM <tag>`, modal@0.11.1 `Image.build`) is looked up in the images
 * directory as the entry named `encodeURIComponent(tag)` — an OCI layout directory, an oci-archive or a docker-archive
 * (see `imageEntryName`). Found, it is unpacked once (src/backends/images) and every sandbox of it runs with a copy
 * of that rootfs as its root. Not found (or no images directory), the image is "host": sandboxes are host directories
 * and commands run on this host, as before images were served; the suite's existing mock tests rely on that for
 * `debian:12-slim` and the pool images. Further Dockerfile commands (`dockerfileCommands`, layered images) are
 * accepted and not run: a layered image is its base image.
 */
export type MockImage = { kind: "host" } | { kind: "rootfs"; tag: string; unpacked: UnpackedImage };

/** The images directory entry that serves `tag`. */
export function imageEntryName(tag: string): string {
  return encodeURIComponent(tag);
}

export class MockImages {
  private readonly imagesDir: string | undefined;
  private readonly cache: ImageCache;

  constructor(options: { imagesDir: string | undefined; cacheDir: string; rootless: boolean }) {
    this.imagesDir = options.imagesDir;
    this.cache = new ImageCache(options.cacheDir, { rootless: options.rootless });
  }

  /** The image of a `FROM <tag>` build; a served image that cannot be unpacked is a build failure (its message). */
  async resolve(tag: string): Promise<MockImage | { failure: string }> {
    if (this.imagesDir === undefined) return { kind: "host" };
    const path = join(this.imagesDir, imageEntryName(tag));
    const served = await access(path).then(
      () => true,
      () => false,
    );
    if (!served) return { kind: "host" };
    try {
      return { kind: "rootfs", tag, unpacked: await this.cache.unpack(await imageReferenceOfPath(path)) };
    } catch (error) {
      return { failure: errorMessage(error) };
    }
  }
}

/** The tag of a `FROM <tag>` first command, or undefined for `FROM base` (a layer over an image built before). */
export function fromTag(dockerfileCommands: readonly string[]): string | undefined {
  const match = /^FROM\s+(\S+)/i.exec(dockerfileCommands[0] ?? "");
  return match?.[1] === "base" ? undefined : match?.[1];
}
