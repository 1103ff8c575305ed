import { logger } from "../../base/log.ts";
import { cliLauncher } from "../launcher.ts";
import { SandboxServerClient } from "../sandbox-server/client.ts";
import type { SandboxBackend, SandboxInfo, SandboxPhase, SandboxRef, SandboxTemplate, IsolationPolicy } from "../types.ts";
import { allocationAddress, currentAllocation, incarnationOf, isLive, placementFailure, schedulerPhase } from "./allocations.ts";
import { NomadClient, type NomadClientOptions } from "./client.ts";
import { isJobExistsConflict } from "./errors.ts";
import {
  META,
  TOKEN_ITEM,
  buildSandboxJob,
  isAlwaysPulled,
  poolJobPrefix,
  sandboxJobId,
  sandboxVariablePath,
  type NomadDriver,
} from "./job.ts";
import type { AllocationStub, JobRead, JobStub } from "./schemas.ts";
import { AllocationWatcher } from "./watch.ts";
import { errorMessage, SandboxError } from "../../base/errors.ts";
import { ServedSlots } from "../sandbox-server/served.ts";
import { realClock, type Clock } from "../../base/clock.ts";

const log = logger("nomad-backend");

export interface NomadBackendOptions extends NomadClientOptions {
  driver?: NomadDriver;
  datacenters?: string[];
  /** The pool's shared sandbox-server token; each sandbox gets it through a Nomad Variable, never in its job. */
  sandboxToken?: string;
  /** The pool's setting, passed to every sandbox server (which refuses to start under bwrap when bwrap cannot run). */
  isolation?: IsolationPolicy;
  /** raw_exec: how to start our CLI on the node; defaults to this node binary and this checkout's bin. */
  launcher?: string[];
  /** docker: the hermes-rollouts image whose prestart task brings the sandbox server into the pool's image. */
  serverImage?: string;
  /** How long create waits for the sandbox server to answer /health. */
  readyTimeoutMs?: number;
  /** Long-poll wait of the allocation watch. */
  watchWaitMs?: number;
  healthTimeoutMs?: number;
  client?: NomadClient;
  /** Injectable for tests of the lifetime. */
  clock?: Clock;
}

/** Every sandbox job ID starts with this, so one watch covers all pools of the namespace. */
const ALL_SANDBOX_JOBS = 'JobID matches "^hr-"';
/** Bound of the terminated set: far more sandboxes than a pool turns over while their stops are in flight. */
const MAX_REMEMBERED_TERMINATED = 10_000;

interface Target {
  incarnation: string;
  server: SandboxServerClient;
}

/**
 * Sandboxes as Nomad jobs, one job per sandbox (Count 1): deregistering a job removes exactly that sandbox,
 * which a scaled count cannot do (Nomad picks the highest index to stop). Commands never go through Nomad:
 * they go to the sandbox server the allocation runs, at the address from the allocation listing.
 *
 * Each sandbox is pinned to the incarnation (allocation + task restart count) first used; when Nomad
 * reschedules or restarts it, the slots' state is gone and calls fail with SandboxError "gone" until the
 * caller creates it again (create re-pins) or terminates it.
 */
export class NomadBackend extends ServedSlots<Target> implements SandboxBackend {
  readonly kind = "nomad" as const;
  readonly client: NomadClient;
  private readonly options: NomadBackendOptions;
  private readonly ownsClient: boolean;
  private readonly watcher: AllocationWatcher;
  private readonly pins = new Map<string, Target>();
  /**
   * Sandboxes this backend terminated: Nomad stops their allocations only when the deregister evaluation runs,
   * so the allocation listing shows them live for a while. Insertion-ordered, the oldest forgotten past a bound.
   */
  private readonly terminated = new Set<string>();
  /** Each job's CreateIndex as last seen: allocations older than it belong to a purged job of the same ID. */
  private readonly jobCreateIndex = new Map<string, number>();
  private readonly servers = new Map<string, SandboxServerClient>();

  constructor(options: NomadBackendOptions = {}) {
    super();
    this.options = options;
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? new NomadClient(options);
    this.watcher = new AllocationWatcher(this.client, ALL_SANDBOX_JOBS, options.watchWaitMs ?? 60_000);
  }

  async create(name: string, template: SandboxTemplate, options: { signal?: AbortSignal } = {}): Promise<SandboxInfo> {
    const jobId = sandboxJobId(template.pool, name);
    this.terminated.delete(jobId);
    const existing = await this.client.findJob(jobId);
    if (existing === undefined || existing.Stop) {
      const driver = this.options.driver ?? "raw_exec";
      const serverImage = this.options.serverImage;
      for (const image of driver === "docker" ? [template.image, ...(serverImage !== undefined ? [serverImage] : [])] : []) {
        if (isAlwaysPulled(image))
          log.warn({ image }, "Nomad's docker driver pulls images tagged latest (or untagged) on every start; pin a tag");
      }
      const token = this.options.sandboxToken;
      const job = buildSandboxJob(name, template, {
        driver,
        datacenters: this.options.datacenters ?? ["*"],
        launcher: this.options.launcher ?? [...cliLauncher],
        tokenVariable: token !== undefined,
        ...(this.options.isolation === undefined ? {} : { isolation: this.options.isolation }),
        ...(this.options.serverImage !== undefined ? { serverImage: this.options.serverImage } : {}),
      });
      // The variable first: the task's template renders it before the server starts.
      if (token !== undefined) await this.client.putVariable(sandboxVariablePath(jobId), { [TOKEN_ITEM]: token });
      try {
        // Check-and-set on a new job: two creators racing on one name end with one job, both reuse it.
        await this.client.registerJob(job, existing === undefined ? { enforceIndex: 0 } : {});
        log.info({ jobId, pool: template.pool }, "registered sandbox job");
      } catch (error) {
        // A conflict: the other creator's job reads the same variable (the pool's one token).
        if (!isJobExistsConflict(error)) {
          // Nothing registered, so nothing would ever delete the variable; the register's error is the one to report.
          if (token !== undefined) {
            await this.client
              .deleteVariable(sandboxVariablePath(jobId))
              .catch((cleanup: unknown) => log.warn({ err: cleanup, jobId }, "could not delete the token variable of a refused job"));
          }
          throw error;
        }
      }
    }
    this.pins.delete(jobId);
    const info = await this.waitReady(jobId, this.options.readyTimeoutMs ?? 120_000, options.signal);
    if (info.phase !== "ready") {
      // The reason (a Nomad task event or the evaluation's FailedTGAllocs) goes to the pool's conditions.
      throw new SandboxError(info.phase === "failed" ? "configuration" : "gone", `sandbox ${jobId} ${info.phase}: ${info.message ?? ""}`);
    }
    await this.target(jobId);
    return info;
  }

  async list(pool: string): Promise<SandboxInfo[]> {
    const prefix = poolJobPrefix(pool);
    const [jobs] = await Promise.all([this.client.listJobs({ prefix }), this.watcher.refresh()]);
    const allocs = await this.watcher.snapshot();
    const mine = jobs.data.filter((job) => job.Meta?.[META.pool] === undefined || job.Meta[META.pool] === pool);
    return Promise.all(mine.map((job) => this.describe(job, allocs)));
  }

  protected healthTimeoutMs(): number {
    return this.options.healthTimeoutMs ?? 5_000;
  }

  /**
   * Deregistering a job Nomad does not know is no error (nomad/job_endpoint.go Deregister), nor is deleting a
   * missing variable, so this is idempotent. The variable goes after the job, so no new allocation can start
   * without its token.
   */
  async terminate(sandbox: SandboxRef): Promise<void> {
    this.pins.delete(sandbox.id);
    this.jobCreateIndex.delete(sandbox.id);
    this.terminated.add(sandbox.id);
    if (this.terminated.size > MAX_REMEMBERED_TERMINATED) this.terminated.delete(this.terminated.values().next().value!);
    await this.client.deregisterJob(sandbox.id, { purge: true });
    if (this.options.sandboxToken !== undefined) await this.client.deleteVariable(sandboxVariablePath(sandbox.id));
  }

  async close(): Promise<void> {
    this.watcher.close();
    if (this.ownsClient) await this.client.close();
  }

  /** Checked against Nomad at once: an allocation that moved or restarted means the sandbox was replaced. */
  protected async lostReason(jobId: string, target: Target): Promise<string | undefined> {
    await this.watcher.refresh();
    const now = await this.target(jobId);
    return now.incarnation === target.incarnation ? undefined : "its allocation was replaced";
  }

  protected async target(jobId: string): Promise<Target> {
    if (this.terminated.has(jobId)) throw new SandboxError("gone", `sandbox ${jobId} was terminated`);
    let alloc = currentAllocation(this.allocationsOf(jobId, await this.watcher.snapshot()));
    if (alloc === undefined || !isLive(alloc)) {
      // A miss may be a stale snapshot (the watch parks on an old index after an agent restart): read again.
      await this.watcher.refresh();
      alloc = currentAllocation(this.allocationsOf(jobId, await this.watcher.snapshot()));
    }
    if (alloc === undefined || !isLive(alloc)) {
      throw new SandboxError(
        "gone",
        `sandbox ${jobId} has no live allocation${alloc ? ` (${alloc.ID.slice(0, 8)} ${alloc.ClientStatus})` : ""}`,
      );
    }
    const incarnation = incarnationOf(alloc);
    const pinned = this.pins.get(jobId);
    if (pinned !== undefined && pinned.incarnation !== incarnation) {
      throw new SandboxError("gone", `sandbox ${jobId}: allocation ${pinned.incarnation} was lost or restarted (now ${incarnation})`);
    }
    if (pinned !== undefined) return pinned;
    const address = allocationAddress(alloc);
    if (address === undefined) throw new SandboxError("transient", `sandbox ${jobId}: allocation ${alloc.ID} has no http port yet`);
    const target = { incarnation, server: this.server(address) };
    this.pins.set(jobId, target);
    return target;
  }

  private server(address: string): SandboxServerClient {
    let server = this.servers.get(address);
    if (server === undefined) {
      server = new SandboxServerClient({
        baseUrl: address,
        ...(this.options.sandboxToken === undefined ? {} : { token: this.options.sandboxToken }),
      });
      this.servers.set(address, server);
    }
    return server;
  }

  /** The job's allocations, without those of an earlier job with the same ID (purged and registered again). */
  private allocationsOf(jobId: string, allocs: readonly AllocationStub[]): AllocationStub[] {
    const createIndex = this.jobCreateIndex.get(jobId) ?? 0;
    return allocs.filter((alloc) => alloc.JobID === jobId && alloc.CreateIndex >= createIndex);
  }

  private async waitReady(jobId: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<SandboxInfo> {
    const deadline = Date.now() + timeoutMs;
    let lastRefresh = Date.now();
    for (;;) {
      if (signal?.aborted) throw new SandboxError("transient", `sandbox ${jobId}: stopped waiting for it (${errorMessage(signal.reason)})`);
      const job = await this.client.findJob(jobId);
      if (job === undefined) throw new SandboxError("gone", `sandbox job ${jobId} disappeared while starting`);
      const info = await this.describe(job, await this.watcher.snapshot());
      if (info.phase === "ready" || info.phase === "failed" || info.phase === "terminated") return info;
      if (Date.now() >= deadline) {
        throw new SandboxError("transient", `sandbox ${jobId} not ready after ${timeoutMs} ms: ${info.message ?? info.phase}`);
      }
      const changed = await this.watcher.changed(Math.min(250, Math.max(1, deadline - Date.now())));
      // Nothing from the watch for a second: read again, in case its index is stale (see target()).
      if (!changed && Date.now() - lastRefresh >= 1_000) {
        lastRefresh = Date.now();
        await this.watcher.refresh();
      }
    }
  }

  /**
   * Nomad's view first; a sandbox is "ready" only when its server answers /health itself. Nomad has no lifetime
   * for service jobs, so one past the template's lifetime is reported terminated and the pool replaces it.
   */
  private async describe(job: JobRead | JobStub, allocs: readonly AllocationStub[]): Promise<SandboxInfo> {
    const meta = job.Meta ?? {};
    const createdAt = new Date(Math.floor(job.SubmitTime / 1e6));
    const lifetimeSeconds = Number(meta[META.lifetimeSeconds] ?? 0);
    const age = (this.options.clock ?? realClock).now() - createdAt.getTime();
    if (lifetimeSeconds > 0 && job.SubmitTime > 0 && age > lifetimeSeconds * 1000) {
      return infoOf(job, createdAt, "terminated", `lifetime of ${lifetimeSeconds} s reached`);
    }
    this.jobCreateIndex.set(job.ID, job.CreateIndex);
    const alloc = currentAllocation(this.allocationsOf(job.ID, allocs));
    // Nothing placed: the job's evaluations say whether the scheduler failed to place it, and why.
    const placement =
      alloc === undefined && !job.Stop
        ? placementFailure((await this.client.jobEvaluations(job.ID)).filter((e) => e.CreateIndex >= job.CreateIndex))
        : undefined;
    let { phase, message } = schedulerPhase(job, alloc, placement);
    const address = alloc === undefined ? undefined : allocationAddress(alloc);
    if (phase === "ready" && address !== undefined) {
      try {
        const health = await this.server(address).health(this.options.healthTimeoutMs ?? 2_000);
        if (health.status !== "ok") ({ phase, message } = { phase: "starting", message: health.message ?? "server not ok" });
        else if (health.message !== undefined) message = health.message;
      } catch (error) {
        phase = "starting";
        message = `sandbox server not answering: ${errorMessage(error)}`;
      }
    }
    return infoOf(job, createdAt, phase, message);
  }
}

function infoOf(job: JobRead | JobStub, createdAt: Date, phase: SandboxPhase, message: string | undefined): SandboxInfo {
  const meta = job.Meta ?? {};
  return {
    id: job.ID,
    name: meta[META.sandbox] ?? job.ID,
    pool: meta[META.pool] ?? "",
    phase,
    slots: Number(meta[META.slots] ?? 0),
    templateHash: meta[META.templateHash] ?? "",
    ...(meta[META.image] === undefined ? {} : { image: meta[META.image] }),
    createdAt,
    ...(message === undefined ? {} : { message }),
  };
}
