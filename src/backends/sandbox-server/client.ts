import { Agent, request as httpRequest } from "node:http";
import { classifyFetchFailure } from "../fetch-errors.ts";
import type { ExecRequest, ExecResult } from "../types.ts";
import type { ErrorResponse, HealthResponse, ReadFileResponse, WireExecRequest } from "./protocol.ts";
import { SandboxError, type SandboxErrorKind } from "../../base/errors.ts";

/**
 * Typed client for one sandbox server. Every failure is a SandboxError:
 *   - connection refused / host unreachable: "gone" (nothing listens any more; the caller may confirm with the
 *     scheduler, e.g. the Nomad allocation status, before replacing);
 *   - reset, timeout, 5xx: "transient"; 429 and 507: "capacity";
 *   - 400/401/403/404: "configuration" (the request itself is wrong and retrying cannot help).
 * The per-request timeout follows the command's own timeout plus a margin, never a fixed session timeout
 * (the original cut 600 s installs off after 30 s).
 */
export interface SandboxServerClientOptions {
  /** e.g. `http://10.0.0.5:23456`; with `socketPath`, only the Host header comes from it. */
  baseUrl: string;
  /** A unix socket the server listens on (a local sandbox's server) instead of the TCP address of `baseUrl`. */
  socketPath?: string;
  token?: string;
  /** Added to a command's timeoutMs for the HTTP deadline. */
  marginMs?: number;
  /** Deadline for calls without a command timeout (health, reset, files). */
  requestTimeoutMs?: number;
}

export type BatchEntry = ExecResult | ErrorResponse;

export class SandboxServerClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly marginMs: number;
  private readonly requestTimeoutMs: number;
  private readonly url: URL;
  private readonly socketPath: string | undefined;
  /** Keep-alive connections of this server only: no call waits behind another server's, none opens a connection per call. */
  private readonly agent = new Agent({ keepAlive: true });

  constructor(options: SandboxServerClientOptions) {
    this.url = new URL(options.baseUrl);
    if (this.url.protocol !== "http:") throw new SandboxError("configuration", `sandbox server ${options.baseUrl}: only http:// is served`);
    this.socketPath = options.socketPath;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.marginMs = options.marginMs ?? 10_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  health(timeoutMs = this.requestTimeoutMs): Promise<HealthResponse> {
    return this.call<HealthResponse>("GET", "/health", undefined, timeoutMs);
  }

  exec(request: ExecRequest): Promise<ExecResult> {
    const wire = toWire(request);
    return this.call<ExecResult>("POST", "/exec", wire, wire.timeoutMs + this.marginMs);
  }

  /** Results in request order; a failed entry is `{error}` (see `isBatchError`). */
  batch(requests: readonly ExecRequest[]): Promise<BatchEntry[]> {
    const wire = requests.map(toWire);
    const longest = Math.max(0, ...wire.map((r) => r.timeoutMs));
    return this.call<BatchEntry[]>("POST", "/batch", wire, longest + this.marginMs);
  }

  async reset(slot: number): Promise<void> {
    await this.call<unknown>("POST", "/reset", { slot }, this.requestTimeoutMs);
  }

  async readFile(slot: number, path: string): Promise<Uint8Array> {
    const response = await this.call<ReadFileResponse>("POST", "/files/read", { slot, path }, this.requestTimeoutMs);
    return new Uint8Array(Buffer.from(response.contentBase64, "base64"));
  }

  /** Closes the kept connections. */
  async close(): Promise<void> {
    this.agent.destroy();
  }

  async writeFile(slot: number, path: string, data: Uint8Array | string): Promise<void> {
    const contentBase64 = Buffer.from(typeof data === "string" ? Buffer.from(data, "utf8") : data).toString("base64");
    await this.call<unknown>("POST", "/files/write", { slot, path, contentBase64 }, this.requestTimeoutMs);
  }

  private async call<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const headers: Record<string, string> = {};
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(payload));
    }
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const what = `${method} ${this.baseUrl}${path}`;
    const { status, text } = await this.send(method, path, headers, payload, timeoutMs).catch((error: unknown) => {
      throw classifyFetchError(error, what);
    });
    if (status < 200 || status >= 300) {
      const message = answerMessage(text) ?? `HTTP ${status}`;
      throw new SandboxError(kindForStatus(status), `${method} ${path}: ${status} ${message}`);
    }
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new SandboxError("transient", `${method} ${path}: response is not JSON`, { cause: error });
    }
  }

  /** node:http rather than fetch: lighter per call, and a unix socket needs no other HTTP client loaded. */
  private send(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        {
          method,
          path,
          headers,
          agent: this.agent,
          // Whole milliseconds: AbortSignal.timeout refuses a fraction (ERR_OUT_OF_RANGE), and callers pass what is
          // left of a deadline.
          signal: AbortSignal.timeout(Math.ceil(timeoutMs)),
          ...(this.socketPath === undefined
            ? { host: this.url.hostname.replace(/^\[|\]$/g, ""), port: this.url.port || 80 }
            : { socketPath: this.socketPath }),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        },
      );
      request.on("error", reject);
      request.end(payload);
    });
  }
}

export function isBatchError(entry: BatchEntry): entry is ErrorResponse {
  return "error" in entry;
}

/** Whole milliseconds, rounded up: the agent loop passes what is left of a trajectory's deadline, a fraction. */
function toWire(request: ExecRequest): WireExecRequest {
  const command = typeof request.command === "string" ? request.command : [...request.command];
  return { ...request, command, timeoutMs: Math.ceil(request.timeoutMs) };
}

function answerMessage(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<ErrorResponse>;
    return typeof parsed.error === "string" ? parsed.error : undefined;
  } catch {
    return text.length > 0 ? text.slice(0, 500) : undefined;
  }
}

export function kindForStatus(status: number): SandboxErrorKind {
  if (status === 429 || status === 507) return "capacity";
  if (status === 410) return "gone";
  if (status >= 400 && status < 500) return "configuration";
  return "transient";
}

/** Maps a fetch failure to a SandboxError: a server that refuses or cannot be reached is gone. */
export function classifyFetchError(error: unknown, what: string): SandboxError {
  return classifyFetchFailure(error, what, [{ kind: "gone", codes: /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND)$/ }]);
}
