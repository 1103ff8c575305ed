import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { App, ModalClient, Sandbox } from "modal";
import { imageEntryName } from "../../../src/testbeds/mock-modal/images.ts";
import type { MockModal } from "../../../src/testbeds/mock-modal/server.ts";
import { archiveTestImage, buildTestImage } from "../../support/oci-images.ts";
import { mockWithClient } from "./support.ts";

const IMAGE_A = "localhost/swe-a:1";
const IMAGE_B = "localhost/swe-b:1";

async function output(sandbox: Sandbox, argv: string[], options: { workdir?: string } = {}): Promise<string> {
  const proc = await sandbox.exec(argv, options);
  const [code, stdout, stderr] = await Promise.all([proc.wait(), proc.stdout.readText(), proc.stderr.readText()]);
  assert.equal(code, 0, `${argv.join(" ")}: ${stderr}`);
  return stdout;
}

// The real modal@0.11.1 SDK against the mock serving two images built offline (docker-archive and OCI layout).
describe("mock-modal sandboxes run in their image's filesystem", () => {
  let dir: string;
  let mock: MockModal;
  let modal: ModalClient;
  let app: App;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mock-modal-images-"));
    const imagesDir = join(dir, "images");
    const layoutA = await buildTestImage(join(dir, "build"), "a", { files: { "/etc/which": "A\n" }, env: { WHO: "a" } });
    await archiveTestImage(layoutA, "docker-archive", join(imagesDir, imageEntryName(IMAGE_A)));
    await buildTestImage(join(imagesDir, imageEntryName(IMAGE_B)), "b", {
      files: { "/etc/which": "B\n", "/testbed/setup.py": "" },
      env: { WHO: "b" },
      workingDir: "/testbed",
    });
    await writeFile(join(imagesDir, imageEntryName("localhost/broken:1")), "not an image");
    ({ mock, modal } = await mockWithClient({ imagesDir, dataDir: join(dir, "mock") }));
    app = await modal.apps.fromName("images-test", { createIfMissing: true });
  });

  after(async () => {
    modal.close();
    await mock.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("exec(['pwd'], { workdir }) prints that workdir, and absolute paths are the image's", async () => {
    const sandbox = await modal.sandboxes.create(app, modal.images.fromRegistry(IMAGE_A), { timeoutMs: 60_000 });
    await output(sandbox, ["mkdir", "-p", "/tmp/w"]);
    assert.equal(await output(sandbox, ["pwd"], { workdir: "/tmp/w" }), "/tmp/w\n");
    assert.equal(await output(sandbox, ["cat", "/etc/which"]), "A\n");
    assert.equal(await output(sandbox, ["sh", "-c", 'echo "$WHO $PATH $HOME"; pwd']), "a /bin /root\n/\n");
    const started = Date.now();
    const slow = await sandbox.exec(["sleep", "30"], { timeoutMs: 1000 });
    assert.equal(await slow.wait(), 137, "an exec timeout kills the command inside the image too");
    assert.ok(Date.now() - started < 10_000);
    await sandbox.terminate();
  });

  test("each image's files at the same path; the image's WORKDIR or the sandbox workdir is where commands start", async () => {
    const b = await modal.sandboxes.create(app, modal.images.fromRegistry(IMAGE_B), { timeoutMs: 60_000 });
    assert.equal(await output(b, ["cat", "/etc/which"]), "B\n");
    assert.equal(await output(b, ["sh", "-c", "pwd; ls"]), "/testbed\nsetup.py\n");
    const job = await modal.sandboxes.create(app, modal.images.fromRegistry(IMAGE_B), { timeoutMs: 60_000, workdir: "/job" });
    assert.equal(await output(job, ["pwd"]), "/job\n");
    await Promise.all([b.terminate(), job.terminate()]);
  });

  test("a sandbox's writes are its own: another sandbox of the image sees the image as built", async () => {
    const [first, second] = await Promise.all([
      modal.sandboxes.create(app, modal.images.fromRegistry(IMAGE_A), { timeoutMs: 60_000 }),
      modal.sandboxes.create(app, modal.images.fromRegistry(IMAGE_A), { timeoutMs: 60_000 }),
    ]);
    await output(first, ["sh", "-c", "echo changed > /etc/which"]);
    assert.equal(await output(first, ["cat", "/etc/which"]), "changed\n");
    assert.equal(await output(second, ["cat", "/etc/which"]), "A\n");
    await Promise.all([first.terminate(), second.terminate()]);
  });

  test("an image the directory does not serve is the host, as before; a served one that cannot be unpacked fails its build", async () => {
    const host = await modal.sandboxes.create(app, modal.images.fromRegistry("debian:12-slim"), { timeoutMs: 60_000 });
    assert.match(await output(host, ["pwd"]), new RegExp(`^${join(dir, "mock", "sandboxes")}/sb-`));
    await host.terminate();
    await assert.rejects(
      modal.sandboxes.create(app, modal.images.fromRegistry("localhost/broken:1"), { timeoutMs: 60_000 }),
      /Image build for im-\w+ failed with the exception:\nimage \S*broken%3A1: tar -tf failed: tar: This does not look like a tar archive/,
    );
  });
});
