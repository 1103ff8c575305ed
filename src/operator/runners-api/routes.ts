import type { IncomingMessage, ServerResponse } from "node:http";
import {
  isRunnersApiAction,
  parseWire,
  runnersApiActions,
  RUNNERS_API_PREFIX,
  type FailureAnswer,
  type RunnersApiAction,
  type RunnersApiAnswer,
  type RunnersApiValidRequest,
} from "../../rollout/protocol.ts";
import type { ControllerMetrics } from "../runtime/metrics.ts";
import { sendJson, type Route } from "../runtime/http.ts";
import type { ActiveJob, ActiveJobs, PoolLookup } from "./registry.ts";
import { bearerCheck } from "../../base/bearer.ts";
import { errorAnswer, HermesError, HttpError, isSandboxError, SandboxError } from "../../base/errors.ts";
import { readJsonBody } from "../../base/http-body.ts";
import { getEnvironment } from "../../envs/index.ts";

/** Each job's token check, made on its first request: a job keeps its token for as long as it is served. */
const tokenChecks = new WeakMap<ActiveJob, (header: string | undefined) => boolean>();

function authorize(req: IncomingMessage, job: ActiveJob): void {
  let check = tokenChecks.get(job);
  if (check === undefined) tokenChecks.set(job, (check = bearerCheck(job.token)));
  if (!check(req.headers.authorization)) throw new HttpError("HR_UNAUTHORIZED", "bad or missing job token");
}

/** Environment steps (setup, checks) may print more than a tool call keeps; no slot command gets more than this. */
const MAX_COMMAND_OUTPUT_BYTES = 16 * 1024 * 1024;

/** The longest slot command a job runs: a tool call, a whole trajectory, or one of its environment's own steps. */
const longestCommandMs = new WeakMap<ActiveJob, number>();

/**
 * A slot command within what the job itself runs: its timeout no longer than the job's longest command, its output
 * no more than the job's tool output cap or an environment step's. A request beyond is refused, naming the field,
 * rather than cut to size in silence.
 */
function checkExecLimits(job: ActiveJob, request: RunnersApiValidRequest<"slots/exec">["request"]): void {
  const { limits, environment } = job.spec;
  let maxTimeoutMs = longestCommandMs.get(job);
  if (maxTimeoutMs === undefined) {
    const { longestStepSeconds } = getEnvironment(environment.name, job.environmentConfig);
    maxTimeoutMs = Math.max(limits.toolTimeoutSeconds, limits.trajectoryTimeoutSeconds, longestStepSeconds) * 1000;
    longestCommandMs.set(job, maxTimeoutMs);
  }
  const maxOutputBytes = Math.max(limits.maxToolOutputBytes, MAX_COMMAND_OUTPUT_BYTES);
  if (request.timeoutMs > maxTimeoutMs)
    throw new HttpError(
      "HR_BAD_REQUEST",
      `body.request.timeoutMs: ${request.timeoutMs} is over the job's longest command (${maxTimeoutMs})`,
    );
  if (request.maxOutputBytes !== undefined && request.maxOutputBytes > maxOutputBytes)
    throw new HttpError("HR_BAD_REQUEST", `body.request.maxOutputBytes: ${request.maxOutputBytes} is over the cap (${maxOutputBytes})`);
}

const JOB_ACTION_PATH = new RegExp(`^${RUNNERS_API_PREFIX}/([^/]+)/([^/]+)/(.+)$`);

/** `abandoned` aborts when the client closes the connection before its answer (a runner that gave up). */
type Handlers = {
  [A in RunnersApiAction]: (job: ActiveJob, body: RunnersApiValidRequest<A>, abandoned: AbortSignal) => Promise<RunnersApiAnswer<A>>;
};

/** Acquires each job has waiting, beside the leases it holds (job.slotLeases). */
const waitingAcquires = new WeakMap<ActiveJob, number>();

/**
 * A job holds or waits for at most twice the slots its runners use at once (a replaced runner's leases may still
 * run out their TTL): a runner, or a token, flooding acquires cannot queue a pool's whole capacity for its job.
 */
function checkSlotCap(job: ActiveJob): void {
  const cap = 2 * job.spec.runners.replicas * job.spec.runners.trajectoriesPerRunner;
  const taken = job.slotLeases.size + (waitingAcquires.get(job) ?? 0);
  if (taken >= cap) {
    throw new SandboxError("capacity", `job ${job.key} holds or waits for ${taken} slots, its cap (2 × replicas × trajectoriesPerRunner)`);
  }
}

/**
 * The runners' API, served by the leader: `/v1/jobs/{namespace}/{name}/{action}`, every call authenticated with
 * the job's token and confined to that job, bodies and answers as `rollout/protocol.ts` has them. Work: next, renew,
 * handback, fail; results: groups; slots: acquire, renew, release, exec, read, write (slot calls go through the
 * controller so runners need no backend access).
 */
export function runnersApi(
  jobs: ActiveJobs,
  pools: PoolLookup,
  metrics: ControllerMetrics,
  leaderURL: () => string | undefined = () => undefined,
): Route {
  const poolOf = (job: ActiveJob) => {
    // The slot went with the deleted pool: "gone" now, so the runner hands its item back at once instead of
    // retrying for the pool a re-created pool of the same name will never bring back.
    if (job.poolGone) throw new HttpError("HR_POOL_GONE", `pool ${job.poolKey} was deleted: the slot went with it`);
    const pool = pools(job.poolKey);
    // After a restart the job can be served before its pool has re-adopted its sandboxes and their leases:
    // the runner retries, keeping the slot it holds.
    if (!pool || !pool.slots.adopted) throw new HttpError("HR_POOL_NOT_READY", `pool ${job.poolKey} is not ready`, { retry: true });
    return pool;
  };
  const refuseNewSlots = (job: ActiveJob) => {
    if (jobs.get(job.key) !== job) throw new HttpError("HR_JOB_RETIRED", `job ${job.key} is no longer served: no new slots`);
    if (job.suspended || job.poolGone)
      throw new HttpError(
        "HR_JOB_NOT_ACQUIRING",
        `job ${job.key} is ${job.suspended ? "suspended" : "waiting for its pool"}: no new slots`,
      );
  };
  const ownSlot = (job: ActiveJob, { leaseId }: { leaseId: string }) => {
    // Slot lease ids are unguessable; the set confines a runner to its own job's leases.
    if (!job.slotLeases.has(leaseId)) throw new HttpError("HR_LEASE_UNKNOWN", `lease ${leaseId} is not held by this job`);
    return leaseId;
  };
  const handlers: Handlers = {
    async info(job) {
      return { spec: job.spec, items: job.rows.count, environmentConfig: job.environmentConfig, suspended: job.suspended };
    },
    async next(job, body) {
      if (job.suspended || job.poolGone) return { suspended: true };
      const assignment = await job.tracker.next(body.runner);
      if (assignment.kind === "done") return { done: true };
      if (assignment.kind === "wait") return { waitMs: assignment.retryAfterMs };
      job.onProgress();
      const { lease } = assignment;
      return {
        leaseId: lease.id,
        index: lease.index,
        attempt: lease.attempt,
        row: await job.rows.row(lease.index),
        expiresAt: lease.expiresAt,
        ttlMs: job.tracker.leaseTTLMs,
      };
    },
    async renew(job, body) {
      const lease = job.tracker.renew(body.leaseId);
      if (!lease) throw new HttpError("HR_WORK_LEASE_GONE", "work lease is gone (expired or the item is done)");
      return { expiresAt: lease.expiresAt, suspended: job.suspended };
    },
    async handback(job, body) {
      const ok = await job.tracker.handBack(body.leaseId);
      job.onProgress();
      return { ok };
    },
    async fail(job, body) {
      const { leaseId } = body;
      // Suspended, or its pool deleted: the attempt was cut short by us, so the item waits instead of failing.
      const ok = await (job.poolGone || job.suspended ? job.tracker.handBack(leaseId) : job.tracker.fail(leaseId));
      metrics.errors.inc({ kind: "infra" });
      job.onProgress();
      return { ok };
    },
    async groups(job, body) {
      if (body.index >= job.rows.count)
        throw new HttpError("HR_BAD_REQUEST", `body.index: item ${body.index} is not in the job (it has ${job.rows.count} items)`);
      const result = await job.tracker.submit(body);
      if (result.stored) {
        job.forwarder?.stored();
        metrics.trajectories.inc({ job: job.key }, body.scores.length);
        const agg = job.tracker.aggregates();
        if (agg.scored > 0) metrics.passRate.set({ job: job.key }, agg.passed / agg.scored);
      }
      job.onProgress();
      return result;
    },
    async "slots/acquire"(job, body, abandoned) {
      refuseNewSlots(job);
      const pool = poolOf(job);
      checkSlotCap(job);
      const started = performance.now();
      const timeoutMs = Math.min(body.timeoutMs ?? pool.acquireTimeoutMs, pool.acquireTimeoutMs);
      waitingAcquires.set(job, (waitingAcquires.get(job) ?? 0) + 1);
      const lease = await pool.slots
        .acquire(job.key, {
          timeoutMs,
          signal: abandoned,
          ...(body.image !== undefined ? { image: body.image } : {}),
          ...(body.group !== undefined ? { group: body.group } : {}),
        })
        .finally(() => {
          waitingAcquires.set(job, (waitingAcquires.get(job) ?? 1) - 1);
        });
      metrics.acquireSeconds.observe({ pool: job.poolKey }, (performance.now() - started) / 1000);
      try {
        // The job may have been suspended, finished or deleted while this acquire waited: its slots were released
        // then, so this one goes back now instead of staying held until its lease TTL. Likewise when the runner
        // gave up on the answer in the moment the slot came.
        refuseNewSlots(job);
        abandoned.throwIfAborted();
      } catch (error) {
        await pool.slots.release(lease.id);
        throw error;
      }
      job.slotLeases.add(lease.id);
      return {
        leaseId: lease.id,
        sandbox: lease.sandbox.name,
        slot: lease.slot,
        image: lease.image,
        expiresAt: lease.expiresAt,
        ttlMs: lease.expiresAt - Date.now(),
      };
    },
    async "slots/renew"(job, body) {
      const lease = await poolOf(job).slots.renew(ownSlot(job, body));
      return { expiresAt: lease.expiresAt };
    },
    async "slots/release"(job, body) {
      const leaseId = ownSlot(job, body);
      if (job.poolGone) {
        job.slotLeases.delete(leaseId);
        return { ok: true };
      }
      // Answered before the workspace reset ends: the lease stops serving calls at once (synchronously, in release)
      // and the slot is free again only once reset, its lease record kept until then, so the runner need not wait
      // for the reset on its trajectory's path. A failed reset quarantines the slot; the answer never reported it.
      void poolOf(job).slots.release(leaseId);
      job.slotLeases.delete(leaseId);
      return { ok: true };
    },
    async "slots/exec"(job, body) {
      checkExecLimits(job, body.request);
      return poolOf(job).slots.exec(ownSlot(job, body), body.request);
    },
    async "slots/read"(job, body) {
      const data = await poolOf(job).slots.readFile(ownSlot(job, body), body.path);
      return { base64: Buffer.from(data).toString("base64") };
    },
    async "slots/write"(job, body) {
      await poolOf(job).slots.writeFile(ownSlot(job, body), body.path, Buffer.from(body.base64, "base64"));
      return { ok: true };
    },
  };
  const serve = async <A extends RunnersApiAction>(
    action: A,
    job: ActiveJob,
    body: unknown,
    abandoned: AbortSignal,
  ): Promise<RunnersApiAnswer<A>> => {
    const request = parseWire(runnersApiActions[action].request, body, "body");
    if (!request.ok) throw new HttpError("HR_BAD_REQUEST", request.errors.join("; "));
    return handlers[action](job, request.value, abandoned);
  };

  return async (req: IncomingMessage, res: ServerResponse) => {
    const match = JOB_ACTION_PATH.exec((req.url ?? "").split("?")[0] ?? "");
    if (!match) return false;
    const [, namespace, name, action] = match;
    try {
      const job = jobs.get(`${namespace}/${name}`);
      // Not (yet) active here: a restarted or newly elected controller is still loading it, or this replica is a follower.
      if (!job)
        throw new HttpError("HR_JOB_NOT_SERVED", `job ${namespace}/${name} is not served by this replica yet`, {
          retry: true,
          leaderURL: leaderURL(),
        });
      authorize(req, job);
      if (!isRunnersApiAction(action!) || (req.method !== "POST" && action !== "info"))
        throw new HttpError("HR_NOT_FOUND", `no action ${req.method} ${action}`);
      const body = await readJsonBody(req);
      const abandoned = new AbortController();
      res.once("close", () => {
        if (!res.writableFinished) abandoned.abort(new SandboxError("transient", "the client closed the connection before the answer"));
      });
      sendJson(res, 200, await serve(action, job, body === undefined ? {} : body, abandoned.signal)); // no body: `info` by GET
    } catch (error) {
      // Catalogued answers (HttpError, a lost lease) carry their status; a sandbox failure is the upstream's fault.
      const status =
        error instanceof HermesError && error.statusCode !== undefined
          ? error.statusCode
          : isSandboxError(error, "capacity")
            ? 503
            : isSandboxError(error)
              ? 502
              : 500;
      if (status >= 500) metrics.errors.inc({ kind: "api" });
      const answer: FailureAnswer = errorAnswer(error);
      sendJson(res, status, answer);
    }
    return true;
  };
}
