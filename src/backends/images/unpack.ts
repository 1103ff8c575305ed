import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { HermesError } from "../../base/errors.ts";
import { logger } from "../../base/log.ts";

const log = logger("images");
const run = promisify(execFile);

/**
 * OCI images unpacked into root filesystems, with kept tools rather than by hand: skopeo (containers-transports(5)
 * references, archive conversion, manifest and config reads) and umoci (layer application, whiteouts, ownership;
 * `--rootless` when not root). An image is named as skopeo names it: `oci:<layout dir>[:<tag>]`,
 * `oci-archive:<file>[:<tag>]` or `docker-archive:<file>[:<ref>]`; `imageReferenceOfPath` picks the transport of a path.
 * Rootfs trees are cached by manifest digest, so one image is unpacked once however many sandboxes use it.
 */
export const IMAGE_TRANSPORTS = ["oci", "oci-archive", "docker-archive"] as const;

/** What a sandbox of the image starts with (the image config's Env, WorkingDir, Entrypoint, Cmd). */
export interface ImageConfig {
  env: Record<string, string>;
  /** "/" when the image sets none, as container runtimes default it. */
  workingDir: string;
  entrypoint: string[];
  cmd: string[];
}

export interface UnpackedImage {
  /** `sha256:…` of the manifest as the source stores it. */
  digest: string;
  rootfs: string;
  config: ImageConfig;
}

/** The subset of an OCI (or Docker) image config this module reads; both formats spell these fields alike. */
interface RawImageConfig {
  config?: { Env?: string[] | null; WorkingDir?: string; Entrypoint?: string[] | null; Cmd?: string[] | null };
}

const MAX_TOOL_OUTPUT = 64 * 1024 * 1024;
/** The file beside `rootfs/` in a cache entry; its presence marks the entry complete. */
const CONFIG_FILE = "image-config.json";

export function parseImageConfig(raw: RawImageConfig): ImageConfig {
  const env: Record<string, string> = {};
  for (const entry of raw.config?.Env ?? []) {
    const equals = entry.indexOf("=");
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return {
    env,
    workingDir: raw.config?.WorkingDir || "/",
    entrypoint: raw.config?.Entrypoint ?? [],
    cmd: raw.config?.Cmd ?? [],
  };
}

/**
 * The skopeo reference of an image on disk: a directory is an OCI layout, a tarball an oci-archive if it holds
 * `oci-layout`, else a docker-archive.
 */
export async function imageReferenceOfPath(path: string): Promise<string> {
  if ((await stat(path)).isDirectory()) return `oci:${path}`;
  const listing = (await tool(path, "tar", ["-tf", path])).toString("utf8");
  const entries = listing.split("\n").map((entry) => entry.replace(/^\.\//, ""));
  return entries.includes("oci-layout") ? `oci-archive:${path}` : `docker-archive:${path}`;
}

/** Whether a name is an image this module unpacks (a transport prefix), rather than a registry name. */
export function isImageReference(reference: string): boolean {
  return (IMAGE_TRANSPORTS as readonly string[]).includes(reference.slice(0, reference.indexOf(":")));
}

function checkReference(reference: string): void {
  if (!isImageReference(reference)) {
    throw new HermesError(
      "HR_SANDBOX_CONFIGURATION",
      `image ${JSON.stringify(reference)}: expected one of ${IMAGE_TRANSPORTS.map((t) => `${t}:<path>`).join(", ")}`,
    );
  }
}

async function tool(reference: string, file: string, args: string[]): Promise<Buffer> {
  try {
    const { stdout } = await run(file, args, { encoding: "buffer", maxBuffer: MAX_TOOL_OUTPUT });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString("utf8").trim();
    throw new HermesError("HR_SANDBOX_CONFIGURATION", `image ${reference}: ${file} ${args[0]} failed: ${stderr || String(error)}`, {
      cause: error,
    });
  }
}

/** Unpacks images into `<cacheDir>/<digest hex>/rootfs`; concurrent requests for one image share one unpack. */
export class ImageCache {
  private readonly cacheDir: string;
  private readonly rootless: boolean;
  private readonly unpacking = new Map<string, Promise<UnpackedImage>>();

  constructor(cacheDir: string, options: { rootless: boolean }) {
    this.cacheDir = cacheDir;
    this.rootless = options.rootless;
  }

  async unpack(reference: string): Promise<UnpackedImage> {
    checkReference(reference);
    // `--raw` prints the manifest bytes exactly as stored, so their hash is the manifest digest.
    const manifest = await tool(reference, "skopeo", ["inspect", "--raw", reference]);
    const digest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;
    let pending = this.unpacking.get(digest);
    if (pending === undefined) {
      pending = this.cachedOrUnpacked(reference, digest).finally(() => this.unpacking.delete(digest));
      this.unpacking.set(digest, pending);
    }
    return pending;
  }

  private entryDir(digest: string): string {
    return join(this.cacheDir, digest.replace(/^sha256:/, ""));
  }

  private async cachedOrUnpacked(reference: string, digest: string): Promise<UnpackedImage> {
    const entry = this.entryDir(digest);
    const cached = await readFile(join(entry, CONFIG_FILE), "utf8").catch(() => undefined);
    if (cached !== undefined) return { digest, rootfs: join(entry, "rootfs"), config: JSON.parse(cached) as ImageConfig };

    await mkdir(this.cacheDir, { recursive: true });
    const work = await mkdtemp(join(this.cacheDir, ".unpack-"));
    try {
      const started = Date.now();
      const layout = `oci:${join(work, "layout")}:image`;
      await tool(reference, "skopeo", ["copy", "--quiet", "--insecure-policy", reference, layout]);
      const raw = JSON.parse(
        (await tool(reference, "skopeo", ["inspect", "--config", "--raw", layout])).toString("utf8"),
      ) as RawImageConfig;
      const config = parseImageConfig(raw);
      const bundle = join(work, "bundle");
      await tool(reference, "umoci", ["unpack", ...(this.rootless ? ["--rootless"] : []), "--image", layout.slice("oci:".length), bundle]);
      // umoci leaves the root 0700 (its bundle is private); as `/` of a sandbox every uid must traverse it.
      await chmod(join(bundle, "rootfs"), 0o755);
      await writeFile(join(bundle, CONFIG_FILE), JSON.stringify(config));
      // Another process may have unpacked the same image meanwhile: the first complete entry stays.
      await rename(bundle, entry).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
      });
      log.info({ reference, digest, ms: Date.now() - started }, "image unpacked");
      return { digest, rootfs: join(entry, "rootfs"), config };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}
