#!/usr/bin/env node
// Entry point. From a checkout Node 24 runs the TypeScript sources directly (type stripping); the image runs this
// same file compiled, next to the compiled sources (npm run build, scripts/build.ts).
import { main } from "../src/cli/main.ts";

main(process.argv).catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
