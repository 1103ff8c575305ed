import { Agent, fetch as undiciFetch } from "undici";
import type { z } from "zod";
import { resolveConnection, type NomadConnection, type NomadConnectionOptions, type NomadEnvironment } from "./config.ts";
import { NomadApiError, classifyTransportError } from "./errors.ts";
import type { NomadJob } from "./job.ts";
import {
  allocationSchema,
  allocationStubSchema,
  deregisterResponseSchema,
  evaluationSchema,
  jobSchema,
  jobStubSchema,
  leaderSchema,
  registerResponseSchema,
  type Allocation,
  type AllocationStub,
  type DeregisterResponse,
  type Evaluation,
  type JobRead,
  type JobStub,
  type RegisterResponse,
} from "./schemas.ts";
import { SandboxError } from "../../base/errors.ts";

/** The subset of WHATWG fetch we call; tests pass a recording fake. */
export type FetchLike = (
  url: string,
  init: FetchInit,
) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  dispatcher?: Agent;
}

export interface NomadClientOptions extends NomadConnectionOptions {
  fetch?: FetchLike;
  /** Deadline of a non-blocking call. */
  requestTimeoutMs?: number;
  /** NOMAD_* fallbacks for the connection options (the CLI passes its own); none when unset. */
  env?: NomadEnvironment;
}

/** A blocking query: answer at once if Nomad's index is past `index`, else park up to `waitMs`. */
export interface BlockingOptions {
  index?: number;
  waitMs?: number;
  signal?: AbortSignal;
}

export interface Indexed<T> {
  data: T;
  /** X-Nomad-Index of the answer (0 when absent). */
  index: number;
  knownLeader: boolean;
}

type Query = Record<string, string | number | boolean | undefined>;

const DEFAULT_WAIT_MS = 60_000;
/** Above Nomad's longest wait (300 s, structs.go MaxBlockingRPCQueryTime, + 1/16 jitter), so undici never cuts a long poll. */
const LONG_POLL_HEADERS_TIMEOUT_MS = 11 * 60_000;

/**
 * Typed client over the Nomad HTTP API, for what the nomad backend needs and nothing else. Works unchanged
 * against a real `nomad agent -dev` and the fake in src/testbeds/fake-nomad.
 */
export class NomadClient {
  readonly connection: NomadConnection;
  private readonly fetchImpl: FetchLike;
  private readonly dispatcher: Agent | undefined;
  private readonly requestTimeoutMs: number;

  constructor(options: NomadClientOptions = {}) {
    this.connection = resolveConnection(options, options.env);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    if (options.fetch !== undefined) {
      this.fetchImpl = options.fetch;
    } else {
      const tls = this.connection.tls;
      this.dispatcher = new Agent({
        headersTimeout: LONG_POLL_HEADERS_TIMEOUT_MS,
        bodyTimeout: LONG_POLL_HEADERS_TIMEOUT_MS,
        ...(tls === undefined ? {} : { connect: { ...tls } }),
      });
      this.fetchImpl = undiciFetch as unknown as FetchLike;
    }
  }

  get namespace(): string {
    return this.connection.namespace;
  }

  async leader(): Promise<string> {
    return (await this.get("/v1/status/leader", leaderSchema)).data;
  }

  /** `enforceIndex: 0` registers only if the job does not exist yet (check-and-set). */
  async registerJob(job: NomadJob, options: { enforceIndex?: number } = {}): Promise<RegisterResponse> {
    const body: Record<string, unknown> = { Job: { ...job, Namespace: job.Namespace ?? this.namespace } };
    if (options.enforceIndex !== undefined) {
      body.EnforceIndex = true;
      body.JobModifyIndex = options.enforceIndex;
    }
    return (await this.request("POST", "/v1/jobs", registerResponseSchema, { body })).data;
  }

  readJob(id: string, blocking: BlockingOptions = {}): Promise<Indexed<JobRead>> {
    return this.get(`/v1/job/${encodeURIComponent(id)}`, jobSchema, {}, blocking);
  }

  /** The job, or undefined when Nomad answers 404 (never registered, or purged). */
  async findJob(id: string): Promise<JobRead | undefined> {
    try {
      return (await this.readJob(id)).data;
    } catch (error) {
      if (error instanceof NomadApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Job stubs by ID prefix; `meta=true` (Nomad >= 1.6) includes each job's Meta. */
  listJobs(options: { prefix?: string; filter?: string } = {}, blocking: BlockingOptions = {}): Promise<Indexed<JobStub[]>> {
    return this.get("/v1/jobs", jobStubSchema.array(), { prefix: options.prefix, filter: options.filter, meta: true }, blocking);
  }

  /** Stubs without AllocatedResources (Nomad builds them with `Stub(nil)`); use listAllocations for addresses. */
  jobAllocations(id: string, options: { all?: boolean } = {}, blocking: BlockingOptions = {}): Promise<Indexed<AllocationStub[]>> {
    return this.get(`/v1/job/${encodeURIComponent(id)}/allocations`, allocationStubSchema.array(), { all: options.all }, blocking);
  }

  /** One call for every allocation matching `filter` (go-bexpr), with resources (addresses) and task states. */
  listAllocations(options: { filter?: string } = {}, blocking: BlockingOptions = {}): Promise<Indexed<AllocationStub[]>> {
    const query = { filter: options.filter, resources: true, task_states: true };
    return this.get("/v1/allocations", allocationStubSchema.array(), query, blocking);
  }

  /** Every evaluation of the job, with `FailedTGAllocs` when the scheduler could not place an allocation. */
  async jobEvaluations(id: string): Promise<Evaluation[]> {
    return (await this.get(`/v1/job/${encodeURIComponent(id)}/evaluations`, evaluationSchema.array())).data;
  }

  async readAllocation(id: string): Promise<Allocation> {
    return (await this.get(`/v1/allocation/${encodeURIComponent(id)}`, allocationSchema)).data;
  }

  /** Stops an allocation; Nomad places a replacement because the job's count is unchanged. */
  async stopAllocation(id: string): Promise<void> {
    await this.request("POST", `/v1/allocation/${encodeURIComponent(id)}/stop`, undefined, {});
  }

  /** Restarts the task(s) in place: same allocation and port, fresh process. */
  async restartAllocation(id: string, taskName?: string): Promise<void> {
    const body = taskName === undefined ? {} : { TaskName: taskName };
    await this.request("POST", `/v1/client/allocation/${encodeURIComponent(id)}/restart`, undefined, { body });
  }

  async deregisterJob(id: string, options: { purge?: boolean } = {}): Promise<DeregisterResponse> {
    const query = { purge: options.purge === true ? true : undefined };
    return (await this.request("DELETE", `/v1/job/${encodeURIComponent(id)}`, deregisterResponseSchema, { query })).data;
  }

  /**
   * Creates or replaces the Nomad Variable at `path` (Nomad >= 1.4; api/variables.go Create). Paths are URL-safe
   * by Nomad's own rule (nomad/structs/variables.go validVariablePath), so they go into the URL as they are.
   */
  async putVariable(path: string, items: Record<string, string>): Promise<void> {
    await this.request("PUT", `/v1/var/${path}`, undefined, { body: { Namespace: this.namespace, Path: path, Items: items } });
  }

  /** Deleting a variable that does not exist is no error (nomad/state/state_store_variables.go svDeleteTxn). */
  async deleteVariable(path: string): Promise<void> {
    await this.request("DELETE", `/v1/var/${path}`, undefined, {});
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private get<T>(path: string, schema: z.ZodType<T>, query: Query = {}, blocking: BlockingOptions = {}): Promise<Indexed<T>> {
    return this.request("GET", path, schema, { query, blocking });
  }

  private async request<T>(
    method: string,
    path: string,
    schema: z.ZodType<T> | undefined,
    options: { query?: Query; body?: unknown; blocking?: BlockingOptions },
  ): Promise<Indexed<T>> {
    const url = this.buildUrl(path, options.query ?? {}, options.blocking);
    const what = `${method} ${path}`;
    const blockingIndex = options.blocking?.index ?? 0;
    const timeoutMs =
      blockingIndex > 0 ? (options.blocking?.waitMs ?? DEFAULT_WAIT_MS) * 1.1 + this.requestTimeoutMs : this.requestTimeoutMs;
    const signals = [AbortSignal.timeout(timeoutMs), options.blocking?.signal].filter((s): s is AbortSignal => s !== undefined);
    const init: FetchInit = { method, headers: this.headers(options.body !== undefined), signal: AbortSignal.any(signals) };
    if (options.body !== undefined) init.body = JSON.stringify(options.body);
    if (this.dispatcher !== undefined) init.dispatcher = this.dispatcher;
    let status: number;
    let text: string;
    let headers: { get(name: string): string | null };
    try {
      const response = await this.fetchImpl(url, init);
      status = response.status;
      headers = response.headers;
      text = await response.text();
    } catch (error) {
      throw classifyTransportError(error, `${what} (${this.connection.address})`);
    }
    if (status < 200 || status >= 300) throw new NomadApiError(status, text, what);
    const index = Number(headers.get("x-nomad-index") ?? "0") || 0;
    const knownLeader = headers.get("x-nomad-knownleader") !== "false";
    if (schema === undefined) return { data: undefined as T, index, knownLeader };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new SandboxError("transient", `${what}: answer is not JSON`, { cause: error });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new SandboxError("configuration", `${what}: unexpected answer shape: ${parsed.error.message.slice(0, 500)}`);
    }
    return { data: parsed.data, index, knownLeader };
  }

  /** Namespace and region always travel as query parameters: Nomad has no header for them. */
  buildUrl(path: string, query: Query, blocking: BlockingOptions = {}): string {
    const url = new URL(this.connection.address + path);
    const params: Query = { ...query, namespace: this.connection.namespace, region: this.connection.region };
    if ((blocking.index ?? 0) > 0) {
      params.index = blocking.index;
      params.wait = `${Math.max(1, Math.round(blocking.waitMs ?? DEFAULT_WAIT_MS))}ms`;
    }
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  private headers(hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (hasBody) headers["content-type"] = "application/json";
    if (this.connection.token !== undefined) headers["x-nomad-token"] = this.connection.token;
    return headers;
  }
}
