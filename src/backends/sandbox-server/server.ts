import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { z } from "zod";
import { logger } from "../../base/log.ts";
import { isOutsideWorkspace } from "../isolation.ts";
import { isMissingFile } from "../local/errors.ts";
import type { SlotHost } from "../local/slot-host.ts";
import type { ExecRequest, ExecResult } from "../types.ts";
import {
  batchRequestSchema,
  execRequestSchema,
  readFileRequestSchema,
  resetRequestSchema,
  writeFileRequestSchema,
  type HealthResponse,
} from "./protocol.ts";
import { bearerCheck } from "../../base/bearer.ts";
import { readJsonBody } from "../../base/http-body.ts";
import { errorAnswer, HttpError, SandboxError } from "../../base/errors.ts";

const log = logger("sandbox-server");

/** Serialises one slot's requests (the original's per-slot lock); slots run in parallel. */
class SlotLocks {
  private readonly tails = new Map<number, Promise<unknown>>();

  run<T>(slot: number, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(slot) ?? Promise.resolve();
    const next = previous.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(slot, tail);
    void tail.then(() => {
      if (this.tails.get(slot) === tail) this.tails.delete(slot);
    });
    return next;
  }
}

export interface SandboxServerOptions {
  host: SlotHost;
  /** Every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Serve without a token: every process that reaches the port (any slot on this host) can drive every slot. */
  insecure?: boolean;
  /** Shown in /health next to the isolation mode (e.g. why bwrap is off, what is limited per slot). */
  isolationMessage?: () => string;
}

/** The sandbox server's request handler over one SlotHost; `listen` it wherever the caller wants. */
export function createSandboxServer(options: SandboxServerOptions): Server {
  const { host, token } = options;
  if (token === undefined && options.insecure !== true)
    throw new Error("no token: the sandbox server needs one (--token or HERMES_SANDBOX_TOKEN), or --insecure to serve without one");
  if (token === "") throw new Error("the sandbox server's token is empty");
  const tokenMatches = token === undefined ? undefined : bearerCheck(token);
  const locks = new SlotLocks();
  const exec = (request: ExecRequest): Promise<ExecResult> => {
    checkSlot(request.slot);
    return locks.run(request.slot, () => host.exec(request));
  };
  const checkSlot = (slot: number): void => {
    if (slot >= host.slots) throw new HttpError("HR_NOT_FOUND", `unknown slot ${slot} (server has ${host.slots})`);
  };

  const routes: Record<string, (body: unknown) => Promise<unknown>> = {
    "GET /health": async (): Promise<HealthResponse> => {
      const message = options.isolationMessage?.();
      return { status: "ok", slots: host.slots, isolation: host.isolation, ...(message ? { message } : {}) };
    },
    "POST /exec": (body) => exec(parse(execRequestSchema, body)),
    "POST /batch": (body) =>
      Promise.all(parse(batchRequestSchema, body).map((request) => exec(request).catch((error: unknown) => errorAnswer(error)))),
    "POST /reset": async (body) => {
      const { slot } = parse(resetRequestSchema, body);
      checkSlot(slot);
      host.killSlot(slot); // a running command must not hold the lock until its own timeout
      await locks.run(slot, () => host.reset(slot));
      return { slot, reset: true };
    },
    "POST /files/read": async (body) => {
      const { slot, path } = parse(readFileRequestSchema, body);
      checkSlot(slot);
      const data = await locks.run(slot, () => host.readFile(slot, path));
      return { contentBase64: Buffer.from(data).toString("base64") };
    },
    "POST /files/write": async (body) => {
      const { slot, path, contentBase64 } = parse(writeFileRequestSchema, body);
      checkSlot(slot);
      await locks.run(slot, () => host.writeFile(slot, path, Buffer.from(contentBase64, "base64")));
      return { slot, path, written: true };
    },
  };

  return createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => log.error({ err: error }, "response failed"));
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? "/").split("?")[0];
    const route = routes[`${request.method} ${path}`];
    try {
      if (tokenMatches !== undefined && !tokenMatches(request.headers.authorization))
        throw new HttpError("HR_UNAUTHORIZED", "missing or wrong bearer token");
      if (route === undefined) throw new HttpError("HR_NOT_FOUND", `no route ${request.method} ${path}`);
      const body = request.method === "POST" ? await readJsonBody(request) : undefined;
      send(response, 200, await route(body));
    } catch (error) {
      const status = statusFor(error);
      if (status >= 500) log.error({ err: error, path }, "request failed");
      send(response, status, errorAnswer(error));
    }
  }
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const result = schema.safeParse(body);
  if (!result.success)
    throw new HttpError("HR_BAD_REQUEST", `bad request: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return result.data;
}

function statusFor(error: unknown): number {
  if (error instanceof HttpError) return error.statusCode;
  if (isMissingFile(error)) return 404;
  if (error instanceof SandboxError) {
    if (error.kind === "configuration") return isOutsideWorkspace(error) ? 403 : 400;
    if (error.kind === "capacity") return 507;
    // The sandbox's directory is gone (terminated under the server): the caller replaces it, never scores the slot.
    if (error.kind === "gone") return 410;
  }
  return 500;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}
