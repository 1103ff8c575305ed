import { execFileSync } from "node:child_process";
import { realpathSync } from "node:fs";
import { posix } from "node:path";
import { SANDBOX_CACHE, SLOT_WORKSPACE } from "./types.ts";

/**
 * What a bwrap slot of an image sandbox sees (isolation.ts builds the command): the image's root read-only as `/`,
 * its own workspace read-write at the work dir (SlotCommandSpec.workdir: the image's WorkingDir or the pool's
 * slotWorkdir), a private /tmp, the cache at /cache, and the image config's Env under the template's. Trusted
 * steps (git fetch, install into the cache) keep the host view: the image may lack git, and what they write is the
 * cache, never the image.
 *
 * The helpers a slot command starts under (prlimit, setpriv: isolation.ts commandPrefix) may be missing from the
 * image, or built against another libc: where they run inside an image root, they are the host's, started by the
 * host's dynamic loader from read-only binds of their directories under HOST_TOOLS_DIR, so the image's libraries
 * never load them; the command they exec is the image's own.
 */
export interface ImageView {
  /** The image's root on the machine that spawns: an unpacked rootfs (local), `/` in a container of the image (Modal). */
  root: string;
  /** The image config's Env (PATH among it); the template's and the request's env override it. */
  env: Record<string, string>;
  /** Set when the helpers must come from the host (a rootfs on the host); unset inside a container of the image. */
  hostTools?: HostTools | undefined;
}

export type SlotHelper = "prlimit" | "setpriv";

/** The host's helpers as real paths, with the loader and the library directories that run them. */
export interface HostTools {
  loader: string;
  libraryDirs: string[];
  helpers: Record<SlotHelper, string>;
}

/** Where the host's helper directories appear inside an image root. */
export const HOST_TOOLS_DIR = "/.hermes-host";

/** The slot's workspace in an image: its work dir, or /workspace for an image whose WorkingDir is `/` (unset). */
export function imageWorkdir(workingDir: string, override: string | undefined): string {
  const chosen = override ?? workingDir;
  return chosen === "/" || chosen === "" ? SLOT_WORKSPACE : posix.normalize(chosen);
}

function hostToolDirs(tools: HostTools): string[] {
  const dirs = [posix.dirname(tools.loader), ...tools.libraryDirs, ...Object.values(tools.helpers).map((path) => posix.dirname(path))];
  return [...new Set(dirs)].sort();
}

/**
 * Directories bwrap mounts over inside the image root: they must exist there, as a read-only root cannot get them
 * at spawn time. Absolute paths as the slot sees them; SlotHost.prepare (local) and the Modal prepare step make them.
 */
export function imageMountPoints(view: ImageView, workdir: string): string[] {
  const hostDirs = view.hostTools === undefined ? [] : hostToolDirs(view.hostTools).map((dir) => posix.join(HOST_TOOLS_DIR, dir));
  return ["/proc", "/dev", "/tmp", SANDBOX_CACHE, workdir, ...hostDirs];
}

/**
 * The bwrap arguments of the root filesystem: the image root read-only at `/` and, when the sandbox root lies inside
 * it (a container of the image), that root hidden under an empty tmpfs, so no slot sees another's workspace.
 */
export function imageRootArgs(view: ImageView, sandboxRoot: string): string[] {
  const root = posix.normalize(view.root);
  const inside = root === "/" ? sandboxRoot : sandboxRoot.startsWith(`${root}/`) ? sandboxRoot.slice(root.length) : undefined;
  const hostDirs = view.hostTools === undefined ? [] : hostToolDirs(view.hostTools);
  return [
    "--ro-bind",
    root,
    "/",
    ...(inside === undefined ? [] : ["--tmpfs", inside]),
    ...hostDirs.flatMap((dir) => ["--ro-bind", dir, posix.join(HOST_TOOLS_DIR, dir)]),
  ];
}

/** The argv prefix that runs a helper inside the slot's root: its name, or the host's copy through the host's loader. */
export function slotHelper(view: ImageView | undefined, helper: SlotHelper): string[] {
  const tools = view?.hostTools;
  if (tools === undefined) return [helper];
  const inView = (path: string) => posix.join(HOST_TOOLS_DIR, path);
  return [inView(tools.loader), "--library-path", tools.libraryDirs.map(inView).join(":"), inView(tools.helpers[helper])];
}

/** The host's helpers and what loads them, read from `ldd` (glibc's, which prints the loader and every library). */
export function probeHostTools(): HostTools {
  const helpers = { prlimit: whichSync("prlimit"), setpriv: whichSync("setpriv") };
  let loader: string | undefined;
  const libraryDirs = new Set<string>();
  for (const path of Object.values(helpers)) {
    for (const line of execFileSync("ldd", [path], { encoding: "utf8" }).split("\n")) {
      const library = /=>\s*(\/\S+)/.exec(line)?.[1];
      if (library !== undefined) libraryDirs.add(posix.dirname(realpathSync(library)));
      const interpreter = /^\s*(\/\S*ld-linux\S*)\s/.exec(line)?.[1];
      if (interpreter !== undefined) loader = realpathSync(interpreter);
    }
  }
  if (loader === undefined) throw new Error(`no dynamic loader in ldd's answer for ${helpers.prlimit}`);
  return { loader, libraryDirs: [...libraryDirs].sort(), helpers };
}

function whichSync(name: string): string {
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    try {
      return realpathSync(posix.join(dir, name));
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} is not installed (util-linux)`);
}
