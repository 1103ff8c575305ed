import type { ExecRequest } from "../backends/types.ts";
import {
  failureAnswerSchema,
  jobPath,
  parseWire,
  runnersApiActions,
  type FailureAnswer,
  type JobInfo,
  type NextWork,
  type RunnersApiAction,
  type RunnersApiAnswer,
  type RunnersApiRequest,
} from "../rollout/protocol.ts";
import type { ScoredDataGroup } from "../rollout/scored.ts";
import type { LeasedSlot, SlotProvider } from "../rollout/types.ts";
import { errorMessage, RunnersApiError, SandboxError } from "../base/errors.ts";

interface Answer {
  status: number;
  body: unknown;
  /** What a failed call said; empty for a success, or when the body is not a failure answer (a proxy's page). */
  failure: Partial<FailureAnswer>;
}

const failureOf = (body: unknown): Partial<FailureAnswer> => failureAnswerSchema.safeParse(body).data ?? {};

/** Renew a lease three times per TTL, so one lost renewal never lets it lapse. */
export const renewIntervalMs = (ttlMs: number) => Math.max(200, Math.floor(ttlMs / 3));

/** A runner's view of the runners' API: one job, one token. */
export class RunnersApiClient {
  /** The configured address (a Service, or the controller that made the pod) and the path of this job under it. */
  readonly #configured: string;
  readonly #jobPath: string;
  /** Where calls go now: the leader a follower pointed at, until it stops answering. */
  #base: string;
  readonly #token: string;
  readonly #unreachableMs: number;

  constructor(options: { url: string; namespace: string; job: string; token: string; unreachableMs?: number }) {
    this.#unreachableMs = options.unreachableMs ?? 120_000;
    this.#jobPath = jobPath(options.namespace, options.job);
    this.#configured = options.url.replace(/\/$/, "");
    this.#base = this.#configured;
    this.#token = options.token;
  }

  /** One call, its answer parsed with the action's schema: an answer that does not match fails as an HTTP error does. */
  async call<A extends RunnersApiAction>(action: A, body: RunnersApiRequest<A>, signal?: AbortSignal): Promise<RunnersApiAnswer<A>> {
    const { status, body: answer, failure } = await this.#send(action, body, signal);
    if (status < 300) {
      const parsed = parseWire(runnersApiActions[action].answer, answer, "answer");
      if (parsed.ok) return parsed.value;
      throw new RunnersApiError(status, `malformed answer to ${action}: ${parsed.errors.join("; ")}`);
    }
    // Sandbox failures keep their kind across the wire so the group core retries them as infrastructure errors.
    if (failure.kind) throw new SandboxError(failure.kind, failure.error ?? `HTTP ${status}`);
    throw new RunnersApiError(status, failure.error ?? `HTTP ${status}`);
  }

  /**
   * Retries while the controller is unreachable or not yet serving the job (restart, leader failover) for up to
   * `#unreachableMs`: a runner outlives a controller restart and keeps its leases by renewing them with the new leader.
   */
  async #send(action: RunnersApiAction, body: object, signal?: AbortSignal): Promise<Answer> {
    const deadline = Date.now() + this.#unreachableMs;
    for (;;) {
      let retryable: unknown;
      try {
        const response = await fetch(`${this.#base}${this.#jobPath}/${action}`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
          ...(signal ? { signal } : {}),
        });
        const answer: unknown = await response.json().catch(() => undefined);
        const failure = response.ok ? {} : failureOf(answer);
        if (!failure.retry) return { status: response.status, body: answer, failure };
        retryable = new RunnersApiError(response.status, failure.error ?? "retry");
        // A follower names the leader: go there directly (the token stays with us, unlike on an HTTP redirect).
        if (failure.leaderURL) this.#base = failure.leaderURL.replace(/\/$/, "");
      } catch (error) {
        retryable = error;
        // The leader we were sent to is gone (failover): back to the configured address.
        this.#base = this.#configured;
      }
      if (signal?.aborted || Date.now() > deadline) throw retryable;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  info(): Promise<JobInfo> {
    return this.call("info", {});
  }
  next(runner: string): Promise<NextWork> {
    return this.call("next", { runner });
  }
  renew(leaseId: string): Promise<RunnersApiAnswer<"renew">> {
    return this.call("renew", { leaseId });
  }
  handBack(leaseId: string): Promise<RunnersApiAnswer<"handback">> {
    return this.call("handback", { leaseId });
  }
  fail(leaseId: string): Promise<RunnersApiAnswer<"fail">> {
    return this.call("fail", { leaseId });
  }
  submitGroup(index: number, attempt: number, scores: number[], group: ScoredDataGroup): Promise<RunnersApiAnswer<"groups">> {
    return this.call("groups", { index, attempt, scores, group });
  }

  /**
   * A slot call whose every failure is a SandboxError, as the LeasedSlot contract says: a lease the controller no
   * longer knows is "gone", anything else that is not the sandbox's own answer (API down past the retry window, an
   * HTTP error) "transient". So the group core retries the trajectory on another slot and never scores it.
   */
  async #slotCall<A extends RunnersApiAction>(action: A, body: RunnersApiRequest<A>, signal?: AbortSignal): Promise<RunnersApiAnswer<A>> {
    try {
      return await this.call(action, body, signal);
    } catch (error) {
      if (error instanceof SandboxError || signal?.aborted) throw error;
      const lost = error instanceof RunnersApiError && (error.status === 404 || error.status === 410);
      const message = `runners' API ${action}: ${errorMessage(error)}`;
      throw new SandboxError(lost ? "gone" : "transient", message, { cause: error });
    }
  }

  /** Slots leased through the controller, renewed in the background while held (three times per the pool's TTL). */
  slotProvider(): SlotProvider {
    return {
      acquire: async ({ trajectoryId, image, group, signal }) => {
        const placement = { ...(image !== undefined ? { image } : {}), ...(group !== undefined ? { group } : {}) };
        const lease = await this.#slotCall("slots/acquire", { trajectoryId, ...placement }, signal);
        const timer = setInterval(
          () => void this.call("slots/renew", { leaseId: lease.leaseId }).catch(() => undefined),
          renewIntervalMs(lease.ttlMs),
        );
        timer.unref();
        const slot: LeasedSlot = {
          sandbox: lease.sandbox,
          slot: lease.slot,
          ...(lease.image !== undefined ? { image: lease.image } : {}),
          exec: (request: Omit<ExecRequest, "slot">) => this.#slotCall("slots/exec", { leaseId: lease.leaseId, request }),
          readFile: async (path: string) => {
            const { base64 } = await this.#slotCall("slots/read", { leaseId: lease.leaseId, path });
            return new Uint8Array(Buffer.from(base64, "base64"));
          },
          writeFile: async (path: string, data: Uint8Array | string) => {
            await this.#slotCall("slots/write", { leaseId: lease.leaseId, path, base64: Buffer.from(data).toString("base64") });
          },
          release: async () => {
            clearInterval(timer);
            await this.call("slots/release", { leaseId: lease.leaseId });
          },
        };
        return slot;
      },
    };
  }
}
