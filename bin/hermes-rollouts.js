#!/usr/bin/env node
// Entry point: Node 24 runs the TypeScript sources directly (type stripping), so there is no build step.
import { main } from "../src/cli/main.ts";

main(process.argv).catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
