/**
 * The fake Nomad agent's HTTP server, written from hashicorp/nomad's source at aa026cc (docs/nomad-fake.md lists
 * what was read and where the fake knowingly differs): the HTTP API of command/agent/*_endpoint.go and the api/
 * package, job validation of nomad/structs/structs.go, deregister semantics of nomad/job_endpoint.go, Variables
 * (variables.ts).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logger } from "../../base/log.ts";
import { FilterSyntaxError, compileFilter } from "./filter.ts";
import { NomadHttpError, canonicalizeJob, registerJob } from "./jobs.ts";
import { FakeScheduler } from "./scheduler.ts";
import { FAKE_NODE_ID, FAKE_NODE_NAME, FakeNomadState, allocStub, jobStub, type AllocRecord, type Json } from "./state.ts";
import { deleteVariable, listVariables, putVariable, readVariable } from "./variables.ts";
import { errorMessage } from "../../base/errors.ts";

const log = logger("fake-nomad");

export interface FakeNomadOptions {
  port?: number;
  host?: string;
  /** Alloc dirs live here; a temporary directory (removed on close) when unset. */
  dataDir?: string;
  /** When set, every call but /v1/status/* needs this token (X-Nomad-Token or Bearer), as with ACLs on. */
  aclToken?: string;
  /** Namespaces besides "default". */
  namespaces?: string[];
  placementDelayMs?: number;
  maxRescheduleDelayMs?: number;
  /** Fault injection on a timer: lose / crash one random running allocation every N ms. */
  loseEveryMs?: number;
  crashEveryMs?: number;
  /** Hears every request as it arrives (tests count what a client asks, e.g. registrations per second). */
  onRequest?: (method: string, path: string) => void;
}

export interface FakeNomad {
  url: string;
  port: number;
  state: FakeNomadState;
  /** Kill the alloc's processes (unless leaveRunning), mark it lost and place a replacement with a new port. */
  loseAllocation(id: string, options?: { leaveRunning?: boolean }): Promise<AllocRecord | undefined>;
  /** Kill the task; the group's restart policy decides what follows. */
  crashAllocation(id: string): void;
  close(): Promise<void>;
}

const LEADER = "127.0.0.1:4647";

/** Starts the fake Nomad HTTP API in this process: the real paths, fields, status codes and text errors we use. */
export async function startFakeNomad(options: FakeNomadOptions = {}): Promise<FakeNomad> {
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "fake-nomad-"));
  const state = new FakeNomadState(options.namespaces);
  const scheduler = new FakeScheduler(state, {
    dataDir,
    placementDelayMs: options.placementDelayMs ?? 20,
    maxRescheduleDelayMs: options.maxRescheduleDelayMs ?? 200,
  });
  const inFlight = new AbortController();
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      const status = error instanceof NomadHttpError ? error.status : 500;
      if (status === 500 && !(error instanceof NomadHttpError)) log.error({ err: error }, "fake Nomad request failed");
      if (!response.headersSent) text(response, status, errorMessage(error));
    });
  });

  const findAlloc = (id: string): AllocRecord => {
    const alloc = state.allocs.get(id) ?? [...state.allocs.values()].find((a) => a.ID.startsWith(id) && id.length >= 8);
    if (alloc === undefined) throw new NomadHttpError(404, "alloc not found");
    return alloc;
  };
  const loseAllocation = (id: string, lose: { leaveRunning?: boolean } = {}): Promise<AllocRecord | undefined> =>
    scheduler.lose(findAlloc(id), lose.leaveRunning === true);
  const crashAllocation = (id: string): void => scheduler.crash(findAlloc(id));

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake");
    const path = url.pathname;
    const method = request.method ?? "GET";
    const query = url.searchParams;
    options.onRequest?.(method, path);
    if (!path.startsWith("/v1/status/") && options.aclToken !== undefined) {
      const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? "")?.[1];
      const token = request.headers["x-nomad-token"] ?? bearer;
      if (token === undefined || token === "") throw new NomadHttpError(403, "Permission denied");
      if (token !== options.aclToken) throw new NomadHttpError(403, "ACL token not found");
    }
    // An unknown namespace is no error on reads (the state store simply has nothing in it: lists are [], a job
    // is 404); a register into it fails validation (nomad/job_endpoint_validators.go), see canonicalizeJob.
    const namespace = query.get("namespace") ?? "default";
    const inNamespace = (ns: string): boolean => namespace === "*" || ns === namespace;
    const flag = (name: string): boolean => query.get(name) === "true";
    const filter = compileQueryFilter(query.get("filter"));

    if (method === "GET") {
      const index = Number(query.get("index") ?? "0");
      if (index > 0) await state.waitForIndex(index, parseWait(query.get("wait")), inFlight.signal);
    }
    const route = (pattern: RegExp): string | undefined => pattern.exec(path)?.[1];
    const only = (...methods: string[]): void => {
      if (!methods.includes(method)) throw new NomadHttpError(405, "Invalid method");
    };

    if (path === "/v1/status/leader") return json(response, state, LEADER);
    if (path === "/v1/status/peers") return json(response, state, [LEADER]);
    if (path === "/v1/agent/self")
      return json(response, state, {
        config: { Region: "global", Datacenter: "dc1", NodeName: FAKE_NODE_NAME },
        member: { Name: `${FAKE_NODE_NAME}.global` },
      });
    if (path === "/v1/nodes") return json(response, state, [nodeStub()]);
    if (path === "/v1/namespaces")
      return json(
        response,
        state,
        [...state.namespaces].map((Name) => ({ Name, Description: "" })),
      );
    if (path === "/v1/jobs" && method === "GET") {
      const prefix = query.get("prefix") ?? "";
      const jobs = [...state.jobs.values()].filter(
        (job) => inNamespace(String(job.Namespace)) && String(job.ID).startsWith(prefix) && filter(job),
      );
      return json(
        response,
        state,
        jobs.sort(byId).map((job) => jobStub(state, job, flag("meta"))),
      );
    }
    if (path === "/v1/jobs" || (route(/^\/v1\/job\/([^/]+)$/) !== undefined && (method === "POST" || method === "PUT"))) {
      only("POST", "PUT");
      const body = (await readJson(request)) as Json;
      const pathId = route(/^\/v1\/job\/([^/]+)$/);
      if (pathId !== undefined && (body.Job as Json | undefined)?.ID !== decodeURIComponent(pathId))
        throw new NomadHttpError(400, "Job ID does not match name");
      const job = canonicalizeJob(body.Job, namespace === "*" ? "default" : namespace, state);
      const outcome = registerJob(state, job, body);
      const evaluation = state.newEval(outcome.job, "job-register");
      if (outcome.place) {
        if (outcome.previous !== undefined) scheduler.stopJob(String(job.Namespace), String(job.ID), evaluation);
        scheduler.placeJob(outcome.job, evaluation);
      } else {
        state.finishEval(evaluation);
      }
      return json(response, state, {
        EvalID: evaluation.ID,
        EvalCreateIndex: evaluation.CreateIndex,
        JobModifyIndex: outcome.job.JobModifyIndex,
        Warnings: "",
        Index: state.index,
        LastContact: 0,
        KnownLeader: true,
      });
    }
    if (path === "/v1/vars") {
      only("GET");
      return json(response, state, listVariables(state, namespace, query.get("prefix") ?? ""));
    }
    const variablePath = route(/^\/v1\/var\/(.+)$/);
    if (variablePath !== undefined) {
      if (method === "GET") return json(response, state, readVariable(state, namespace, variablePath));
      if (method === "PUT" || method === "POST")
        return json(response, state, putVariable(state, variablePath, (await readJson(request)) as Json, namespace, query));
      // variable_endpoint.go answers any other method with 400, not 405.
      if (method !== "DELETE") throw new NomadHttpError(400, "Invalid method");
      deleteVariable(state, namespace, variablePath);
      response.writeHead(204, { "x-nomad-index": String(state.index) });
      return void response.end();
    }
    const jobId = route(/^\/v1\/job\/([^/]+)(?:\/[a-z]+)?$/);
    if (jobId !== undefined) {
      const id = decodeURIComponent(jobId);
      const job = state.getJob(namespace, id);
      const sub = path.slice(`/v1/job/${jobId}`.length);
      // nomad/job_endpoint.go Deregister: a job that does not exist is no error (no eval, index 0).
      if (job === undefined && sub === "" && method === "DELETE")
        return json(response, state, { EvalID: "", EvalCreateIndex: 0, JobModifyIndex: 0, Index: state.index });
      if (job === undefined) throw new NomadHttpError(404, "job not found");
      if (sub === "" && method === "GET") return json(response, state, { ...job, Status: state.jobStatus(job) });
      if (sub === "" && method === "DELETE") {
        // The job changes at once; its allocations stop only when the deregister evaluation runs.
        const evaluation = state.newEval(job, "job-deregister");
        scheduler.stopJob(namespace, id, evaluation);
        const index = state.bump();
        if (flag("purge")) state.jobs.delete(state.jobKey(namespace, id));
        else Object.assign(job, { Stop: true, ModifyIndex: index, JobModifyIndex: index });
        return json(response, state, {
          EvalID: evaluation.ID,
          EvalCreateIndex: evaluation.CreateIndex,
          JobModifyIndex: index,
          Index: index,
        });
      }
      if (sub === "/evaluations" && method === "GET") {
        const evaluations = state.jobEvals(namespace, id).sort((a, b) => Number(b.CreateIndex) - Number(a.CreateIndex));
        return json(response, state, evaluations);
      }
      if (sub === "/allocations" && method === "GET") {
        const allocs = state.jobAllocs(namespace, id).filter((a) => flag("all") || a.JobVersion <= Number(job.Version));
        return json(
          response,
          state,
          allocs.map((a) => allocStub(a, { resources: false, taskStates: true })),
        );
      }
      if (sub === "/summary" && method === "GET") return json(response, state, jobStub(state, job, false).JobSummary);
      throw new NomadHttpError(405, "Invalid method");
    }
    if (path === "/v1/allocations") {
      only("GET");
      const allocs = [...state.allocs.values()].filter((a) => inNamespace(a.Namespace) && filter(a));
      const options = { resources: flag("resources"), taskStates: flag("task_states") };
      return json(
        response,
        state,
        allocs.sort((a, b) => a.CreateIndex - b.CreateIndex).map((a) => allocStub(a, options)),
      );
    }
    const allocId = route(/^\/v1\/allocation\/([^/]+)(?:\/stop)?$/);
    if (allocId !== undefined) {
      const alloc = findAlloc(allocId);
      if (!inNamespace(alloc.Namespace)) throw new NomadHttpError(404, "alloc not found");
      if (path.endsWith("/stop")) {
        only("POST", "PUT");
        await scheduler.stopAndReplace(alloc);
        return json(response, state, { EvalID: randomUUID(), Index: state.index });
      }
      return json(response, state, alloc);
    }
    const restartId = route(/^\/v1\/client\/allocation\/([^/]+)\/restart$/);
    if (restartId !== undefined) {
      only("POST", "PUT");
      scheduler.restartInPlace(findAlloc(restartId));
      return json(response, state, {});
    }
    const faultId = route(/^\/v1\/fake\/allocation\/([^/]+)\/(?:lose|crash)$/);
    if (faultId !== undefined) {
      only("POST", "PUT");
      if (path.endsWith("/crash")) crashAllocation(faultId);
      else await loseAllocation(faultId, { leaveRunning: flag("leave_running") });
      return json(response, state, {});
    }
    throw new NomadHttpError(404, "404 page not found");
  }

  const timers = [
    everyMs(options.loseEveryMs, () => {
      const victim = randomRunning(state);
      if (victim !== undefined) void loseAllocation(victim.ID);
    }),
    everyMs(options.crashEveryMs, () => {
      const victim = randomRunning(state);
      if (victim !== undefined) crashAllocation(victim.ID);
    }),
  ];
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  log.info({ port, dataDir, acl: options.aclToken !== undefined }, "fake Nomad listening");
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    port,
    state,
    loseAllocation,
    crashAllocation,
    async close() {
      for (const timer of timers) if (timer !== undefined) clearInterval(timer);
      inFlight.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // As `nomad agent -dev` on shutdown: every allocation's processes go with it.
      await scheduler.close();
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function compileQueryFilter(source: string | null): (object: unknown) => boolean {
  if (source === null || source.trim() === "") return () => true;
  try {
    return compileFilter(source);
  } catch (error) {
    if (error instanceof FilterSyntaxError) throw new NomadHttpError(400, `failed to read filter expression: ${error.message}`);
    throw error;
  }
}

/** Go duration subset ("500ms", "60s", "5m"); default and cap are 5 min (structs.go Max/DefaultBlockingRPCQueryTime). */
export function parseWait(value: string | null): number {
  if (value === null || value === "") return 300_000;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (match === null) throw new NomadHttpError(400, `Invalid wait time: ${value}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  return Math.min(300_000, Number(match[1]) * unit);
}

function json(response: ServerResponse, state: FakeNomadState, body: unknown): void {
  response.writeHead(200, {
    "content-type": "application/json",
    "x-nomad-index": String(state.index),
    "x-nomad-knownleader": "true",
    "x-nomad-lastcontact": "0",
  });
  response.end(JSON.stringify(body));
}

function text(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  response.end(body);
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new NomadHttpError(400, "Failed to decode request body: invalid character");
  }
}

function byId(a: Json, b: Json): number {
  return String(a.ID).localeCompare(String(b.ID));
}

function nodeStub(): Json {
  const driver = { Detected: true, Healthy: true, HealthDescription: "Healthy" };
  return {
    ID: FAKE_NODE_ID,
    Name: FAKE_NODE_NAME,
    Datacenter: "dc1",
    NodePool: "default",
    Status: "ready",
    SchedulingEligibility: "eligible",
    Drain: false,
    Drivers: { raw_exec: driver, exec: driver },
  };
}

function randomRunning(state: FakeNomadState): AllocRecord | undefined {
  const running = [...state.allocs.values()].filter((a) => a.ClientStatus === "running" && a.DesiredStatus === "run");
  return running[Math.floor(Math.random() * running.length)];
}

function everyMs(ms: number | undefined, run: () => unknown): NodeJS.Timeout | undefined {
  return ms === undefined || ms <= 0 ? undefined : setInterval(run, ms);
}
