import { fileURLToPath } from "node:url";

/** How to start this same CLI in another process: this node binary and this checkout's bin (a sandbox server). */
export const cliLauncher: readonly string[] = [process.execPath, fileURLToPath(new URL("../../bin/hermes-rollouts.js", import.meta.url))];
