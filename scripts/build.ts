/**
 * `npm run build`: the app as compiled JavaScript in dist/, laid out like the repo (dist/bin, dist/src,
 * dist/package.json), so the image runs it without Node's type stripper and every path the code and the pools know
 * (bin/hermes-rollouts.js, src/... next to node_modules) stays as it is. Tests and `hermes-rollouts run` keep
 * running the TypeScript sources.
 *  1. tsc emits src/ and bin/ (no type check: that is `npm run typecheck`), .ts imports rewritten to .js;
 *  2. the files under src/ that are not TypeScript (bundled datasets, generated definitions) are copied;
 *  3. the modules that only re-export a package's values for the operator (client-node, prom-client) are replaced by
 *     bundles of what they re-export, tree-shaken: hundreds of modules loaded one by one cost tens of MiB (see each).
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..");
const dist = join(root, "dist");

rmSync(dist, { recursive: true, force: true });
const typescript = dirname(createRequire(import.meta.url).resolve("typescript/package.json"));
execFileSync(process.execPath, [join(typescript, "bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
cpSync(join(root, "src"), join(dist, "src"), {
  recursive: true,
  filter: (path) => statSync(path).isDirectory() || !path.endsWith(".ts"),
});
copyFileSync(join(root, "package.json"), join(dist, "package.json"));
const bundled = ["src/operator/kube.ts", "src/operator/runtime/prometheus.ts"];
await build({
  entryPoints: bundled.map((path) => join(root, path)),
  outdir: join(dist, "src"),
  outbase: join(root, "src"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  logLevel: "warning",
  // node-fetch 2 stays a package: bundled, its tr46 would load Node's deprecated punycode from outside
  // node_modules, which makes Node print a deprecation warning at every start.
  external: ["node-fetch"],
  // client-node's dependencies are CommonJS: their require() calls of Node's modules need a real require.
  banner: { js: 'import { createRequire as bundleRequire } from "node:module"; const require = bundleRequire(import.meta.url);' },
});
