import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { errorAnswer, HttpError } from "../../base/errors.ts";

/** A route handler returns true when it answered the request. */
export type Route = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface ProbeServerOptions {
  registry: Registry;
  /** Liveness: the process and its loops are alive. */
  healthy: () => boolean;
  /** Readiness: informers synced (every replica is ready; only the leader reconciles). */
  ready: () => boolean;
  routes?: Route[];
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** /healthz, /readyz and /metrics, plus extra routes (the runners' API) on the same port. */
export function createProbeServer(options: ProbeServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const answer = async (): Promise<void> => {
      if (path === "/healthz") return void sendJson(res, options.healthy() ? 200 : 500, { ok: options.healthy() });
      if (path === "/readyz") return void sendJson(res, options.ready() ? 200 : 503, { ready: options.ready() });
      if (path === "/metrics") {
        const text = await options.registry.metrics();
        res.writeHead(200, { "content-type": options.registry.contentType });
        return void res.end(text);
      }
      for (const route of options.routes ?? []) if (await route(req, res)) return;
      throw new HttpError("HR_NOT_FOUND", `no route for ${req.method} ${path}`);
    };
    answer().catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, error instanceof HttpError ? error.statusCode : 500, errorAnswer(error));
      else res.destroy();
    });
  });
}

export async function listen(server: Server, port: number, host = "0.0.0.0"): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
