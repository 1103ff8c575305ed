/**
 * Serves a directory of bare git repositories over git's smart HTTP protocol (git http-backend as CGI), on
 * loopback unless told otherwise. An isolated slot cannot see the host's files, so a `file://` repo base (the bundled mini-dataset)
 * is handed to sandboxes as this http:// base instead: clones then take the same network path GitHub takes.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface GitHttpServer {
  /** Base URL ending in `/`; `<url><owner>/<name>.git` is a repository under the served root. */
  url: string;
  close(): Promise<void>;
}

/** Splits a CGI response into its status, headers and body start. */
function parseCgiHead(head: string): { status: number; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  let status = 200;
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "status") status = Number.parseInt(value, 10) || 200;
    else headers[name] = value;
  }
  return { status, headers };
}

export interface GitHttpOptions {
  /** Address to bind; loopback by default. */
  host?: string;
  /** Host sandboxes reach the server at (e.g. the controller's pod IP); defaults to `host`. */
  advertiseHost?: string;
}

export async function startGitHttpServer(root: string, options: GitHttpOptions = {}): Promise<GitHttpServer> {
  const host = options.host ?? "127.0.0.1";
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const child = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: request.method ?? "GET",
        CONTENT_TYPE: request.headers["content-type"] ?? "",
        ...(request.headers["content-encoding"] ? { HTTP_CONTENT_ENCODING: request.headers["content-encoding"] } : {}),
        REMOTE_ADDR: "127.0.0.1",
        // Sandboxes fetch the base commit by sha, as the env does against GitHub.
        GIT_CONFIG_COUNT: "2",
        GIT_CONFIG_KEY_0: "uploadpack.allowAnySHA1InWant",
        GIT_CONFIG_VALUE_0: "true",
        GIT_CONFIG_KEY_1: "safe.directory",
        GIT_CONFIG_VALUE_1: "*",
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    request.pipe(child.stdin);
    let buffered = Buffer.alloc(0);
    let headSent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (headSent) {
        response.write(chunk);
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      const text = buffered.toString("latin1");
      const end = text.search(/\r?\n\r?\n/);
      if (end < 0) return;
      const separator = text.slice(end).startsWith("\r\n\r\n") ? 4 : 2;
      const { status, headers } = parseCgiHead(text.slice(0, end));
      response.writeHead(status, headers);
      headSent = true;
      response.write(buffered.subarray(end + separator));
    });
    child.on("close", () => {
      if (!headSent) response.writeHead(502).end("git http-backend failed");
      else response.end();
    });
    child.on("error", () => {
      if (!headSent) response.writeHead(500).end("cannot run git http-backend");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.advertiseHost ?? host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
