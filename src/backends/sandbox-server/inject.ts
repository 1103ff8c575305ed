import { chmod, copyFile, cp, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout or image directory this CLI runs from (`/app` in the image): the parent of bin/ and src/. */
export const APP_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** What the CLI needs at run time: package.json ("type": "module", the version), the entry point, sources, deps. */
const APP_ENTRIES = ["package.json", "bin", "src", "node_modules"];

/** The step that runs `inject` before the server starts: a Nomad docker job's prestart task, a sandbox pod's initContainer. */
export const INJECT_STEP_NAME = "inject-server";

/** The arguments of the hermes-rollouts image (its entrypoint is this CLI) that fill `dir`. */
export const injectArgs = (dir: string) => ["inject", "--to", dir];

/** How another image starts this CLI once `dir` holds the injected copy: its node running its entry point. */
export const injectedServerCommand = (dir: string) => [join(dir, "node"), join(dir, "app", "bin", "hermes-rollouts.js")];

export interface ServerSource {
  /** The node binary to copy (the running one: `process.execPath`). */
  execPath: string;
  appRoot: string;
}

/**
 * Copies a self-contained sandbox server to `to`: `<to>/node` and `<to>/app/{package.json,bin,src,node_modules}`,
 * so that any image with a compatible C library runs it as `<to>/node <to>/app/bin/hermes-rollouts.js`. A Nomad
 * docker pool's prestart task runs this in the hermes-rollouts image, into the allocation's shared dir. Files
 * are overwritten, so a restarted task completes a copy an earlier run left half done.
 */
export async function injectServer(to: string, source: ServerSource): Promise<void> {
  const app = join(to, "app");
  await mkdir(app, { recursive: true });
  await copyFile(source.execPath, join(to, "node"));
  // The image's user may differ from the server's: readable and runnable by everyone.
  await chmod(join(to, "node"), 0o755);
  for (const entry of APP_ENTRIES) {
    await cp(join(source.appRoot, entry), join(app, entry), { recursive: true, force: true, verbatimSymlinks: true });
  }
}
