import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageCache, imageReferenceOfPath } from "../../../src/backends/images/unpack.ts";
import { archiveTestImage, buildTestImage } from "../../support/oci-images.ts";

// Two images built offline with umoci, with different files at the same absolute paths, unpacked by skopeo + umoci.
describe("OCI images unpacked into cached root filesystems", () => {
  let dir: string;
  let layoutA: string;
  let dockerArchiveA: string;
  let ociArchiveB: string;
  const rootless = process.getuid?.() !== 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "images-"));
    const layout = join(dir, "layout");
    layoutA = await buildTestImage(layout, "a", { files: { "/etc/which": "A\n", "/opt/env/version": "1.0\n" }, env: { WHO: "a" } });
    const layoutB = await buildTestImage(layout, "b", {
      files: { "/etc/which": "B\n", "/opt/env/version": "2.0\n", "/testbed/setup.py": "" },
      env: { WHO: "b" },
      workingDir: "/testbed",
    });
    dockerArchiveA = await archiveTestImage(layoutA, "docker-archive", join(dir, "a.docker.tar"));
    ociArchiveB = await archiveTestImage(layoutB, "oci-archive", join(dir, "b.oci.tar"));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("each image's own files at the same absolute paths, and its config", async () => {
    const cache = new ImageCache(join(dir, "cache-1"), { rootless });
    const [a, b] = await Promise.all([cache.unpack(dockerArchiveA), cache.unpack(ociArchiveB)]);
    assert.notEqual(a.digest, b.digest);
    assert.equal(await readFile(join(a.rootfs, "etc/which"), "utf8"), "A\n");
    assert.equal(await readFile(join(b.rootfs, "etc/which"), "utf8"), "B\n");
    assert.equal(await readFile(join(a.rootfs, "opt/env/version"), "utf8"), "1.0\n");
    assert.equal(await readFile(join(b.rootfs, "opt/env/version"), "utf8"), "2.0\n");
    assert.deepEqual(a.config, { env: { PATH: "/bin", WHO: "a" }, workingDir: "/", entrypoint: [], cmd: [] });
    assert.deepEqual(b.config, { env: { PATH: "/bin", WHO: "b" }, workingDir: "/testbed", entrypoint: [], cmd: [] });
  });

  test("concurrent requests for one image share one unpack; later ones (and another cache on the dir) hit the cache", async () => {
    const cacheDir = join(dir, "cache-2");
    const cache = new ImageCache(cacheDir, { rootless });
    const [first, second] = await Promise.all([cache.unpack(layoutA), cache.unpack(layoutA)]);
    assert.equal(first, second, "one unpack answered both");
    await writeFile(join(first.rootfs, "marker"), "kept");
    const again = await new ImageCache(cacheDir, { rootless }).unpack(layoutA);
    assert.equal(again.rootfs, first.rootfs);
    assert.equal(await readFile(join(again.rootfs, "marker"), "utf8"), "kept", "not unpacked again");
    assert.deepEqual(again.config, first.config);
    assert.deepEqual(await readdir(cacheDir), [first.digest.replace("sha256:", "")], "no work dirs left behind");
  });

  test("the transport of a path: layout directory, oci-archive, docker-archive", async () => {
    assert.equal(await imageReferenceOfPath(join(dir, "layout")), `oci:${join(dir, "layout")}`);
    assert.equal(await imageReferenceOfPath(join(dir, "b.oci.tar")), `oci-archive:${join(dir, "b.oci.tar")}`);
    assert.equal(await imageReferenceOfPath(join(dir, "a.docker.tar")), `docker-archive:${join(dir, "a.docker.tar")}`);
  });

  test("an unknown transport or a missing image is a configuration error naming the image", async () => {
    const cache = new ImageCache(join(dir, "cache-3"), { rootless });
    await assert.rejects(cache.unpack("docker://debian:12"), {
      code: "HR_SANDBOX_CONFIGURATION",
      message: /docker:\/\/debian:12.*oci:<path>/,
    });
    const missing = `oci-archive:${join(dir, "missing.tar")}`;
    await assert.rejects(cache.unpack(missing), {
      code: "HR_SANDBOX_CONFIGURATION",
      message: new RegExp(`image ${missing}: skopeo inspect failed`),
    });
  });
});
