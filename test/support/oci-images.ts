import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Applets the test images link to busybox: a shell, `pwd` and file checks, and what the Modal backend runs in a
 * sandbox besides bwrap and GNU find (timeout, base64, dirname).
 */
const APPLETS = [
  "sh",
  "pwd",
  "cat",
  "mkdir",
  "echo",
  "ls",
  "test",
  "env",
  "sleep",
  "id",
  "rm",
  "touch",
  "timeout",
  "base64",
  "dirname",
  "true",
];

export interface TestImage {
  /** Files by absolute path in the image. */
  files: Record<string, string>;
  env?: Record<string, string>;
  workingDir?: string;
  /**
   * Host programs copied in at their own paths with the libraries and loader `ldd` lists (e.g. /usr/bin/bwrap, which
   * the Modal backend runs inside a sandbox of the image).
   */
  hostPrograms?: string[];
  /** Files among `files` made executable. */
  executables?: string[];
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
    for (const program of image.hostPrograms ?? []) await copyWithLibraries(program, content);
    for (const [path, text] of Object.entries(image.files)) {
      await mkdir(dirname(join(content, path)), { recursive: true });
      await writeFile(join(content, path), text, { mode: image.executables?.includes(path) ? 0o755 : 0o644 });
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

async function copyWithLibraries(program: string, content: string): Promise<void> {
  const { stdout } = await run("ldd", [program]);
  const libraries = [...stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((match) => match[1] ?? "");
  for (const path of [program, ...libraries]) {
    const target = join(content, await realpath(path));
    await mkdir(dirname(target), { recursive: true });
    await copyFile(path, target);
    await chmod(target, 0o755);
    // The name the loader and the binary ask for, when it is a link (the loader's /lib64 path, libfoo.so.1 -> .so.1.2).
    if (path !== (await realpath(path))) {
      await mkdir(dirname(join(content, path)), { recursive: true });
      await symlink(await realpath(path), join(content, path)).catch(() => undefined);
    }
  }
}

/** Copies an image to an archive of the given transport (`oci-archive` or `docker-archive`) with skopeo. */
export async function archiveTestImage(reference: string, transport: "oci-archive" | "docker-archive", file: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await run("skopeo", ["copy", "--quiet", "--insecure-policy", reference, `${transport}:${file}`]);
  return `${transport}:${file}`;
}

/**
 * Two images with different files at the same absolute paths and a different "interpreter package": `greet` on the
 * PATH (/usr/local/bin, a busybox sh script, as the images have no python) reads its version from its own library
 * file. Both work in /testbed, as SWE-smith's images do, and carry the host's bash (slot commands given as text run
 * under `bash -c`), bwrap and GNU find (the Modal backend runs slots under bwrap and resets them with
 * `find -delete`, which busybox lacks).
 */
export const TWO_IMAGES = {
  a: { which: "A", greeting: "A 1.0" },
  b: { which: "B", greeting: "B 2.0" },
} as const;

export const TWO_IMAGES_WORKDIR = "/testbed";

export function twoImageSpec(name: keyof typeof TWO_IMAGES): TestImage {
  const image = TWO_IMAGES[name];
  const [who, version] = image.greeting.split(" ");
  return {
    files: {
      "/etc/which": `${image.which}\n`,
      "/usr/local/bin/greet": '#!/bin/sh\n. /opt/greet/lib.sh\necho "$GREET_WHO $GREET_VERSION"\n',
      "/opt/greet/lib.sh": `GREET_WHO=${who}\nGREET_VERSION=${version}\n`,
      [`${TWO_IMAGES_WORKDIR}/from-image`]: `${image.which}\n`,
    },
    executables: ["/usr/local/bin/greet"],
    env: { PATH: "/usr/local/bin:/usr/bin:/bin" },
    workingDir: TWO_IMAGES_WORKDIR,
    hostPrograms: ["/usr/bin/bwrap", "/usr/bin/find", "/bin/bash"],
  };
}
