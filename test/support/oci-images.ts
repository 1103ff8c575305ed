import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Applets the test images link to busybox: enough for a shell, `pwd` and file checks. */
const APPLETS = ["sh", "pwd", "cat", "mkdir", "echo", "ls", "test", "env", "sleep"];

export interface TestImage {
  /** Files by absolute path in the image. */
  files: Record<string, string>;
  env?: Record<string, string>;
  workingDir?: string;
}

/**
 * Builds a small OCI image offline into the layout `layoutDir` under `tag`, with umoci alone (no base distro):
 * Debian's busybox-static as /bin (it needs no libraries), plus the given files. Returns the skopeo reference.
 */
export async function buildTestImage(layoutDir: string, tag: string, image: TestImage): Promise<string> {
  const content = await mkdtemp(join(tmpdir(), "image-content-"));
  try {
    await mkdir(join(content, "bin"), { recursive: true });
    await copyFile("/bin/busybox", join(content, "bin/busybox"));
    for (const applet of APPLETS) await symlink("busybox", join(content, "bin", applet));
    for (const [path, text] of Object.entries(image.files)) {
      await mkdir(dirname(join(content, path)), { recursive: true });
      await writeFile(join(content, path), text);
    }
    await mkdir(dirname(layoutDir), { recursive: true });
    await run("umoci", ["init", "--layout", layoutDir]).catch((error: { stderr?: string }) => {
      if (!error.stderr?.includes("exists")) throw error;
    });
    const tagged = `${layoutDir}:${tag}`;
    await run("umoci", ["new", "--image", tagged]);
    await run("umoci", ["insert", "--image", tagged, content, "/"]);
    const env = Object.entries({ PATH: "/bin", ...image.env }).flatMap(([key, value]) => ["--config.env", `${key}=${value}`]);
    const workdir = image.workingDir === undefined ? [] : ["--config.workingdir", image.workingDir];
    await run("umoci", ["config", "--image", tagged, ...env, ...workdir]);
    return `oci:${tagged}`;
  } finally {
    await rm(content, { recursive: true, force: true });
  }
}

/** Copies an image to an archive of the given transport (`oci-archive` or `docker-archive`) with skopeo. */
export async function archiveTestImage(reference: string, transport: "oci-archive" | "docker-archive", file: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await run("skopeo", ["copy", "--quiet", "--insecure-policy", reference, `${transport}:${file}`]);
  return `${transport}:${file}`;
}
