import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Every module URL a fresh node process resolves when it imports `path` (absolute), seen by a module hook. */
export async function modulesLoadedBy(path: string): Promise<string[]> {
  const script = `
    import { registerHooks } from "node:module";
    const urls = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); urls.push(r.url); return r; } });
    await import(${JSON.stringify(path)});
    console.log(JSON.stringify(urls));
  `;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script]);
  return JSON.parse(stdout) as string[];
}

/** The npm packages among module URLs (scoped names kept whole). */
export const packagesOf = (urls: readonly string[]): Set<string> =>
  new Set(urls.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []));
