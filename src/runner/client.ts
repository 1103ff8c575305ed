import type { ExecRequest, ExecResult } from "../backends/types.ts";
import type { RolloutJobSpec } from "../api/index.ts";
import type { LeasedSlot, SlotProvider } from "../rollout/types.ts";
import { errorMessage, RunnersApiError, SandboxError } from "../base/errors.ts";

interface ApiPayload {
  error?: string;
  kind?: string;
  retry?: boolean;
  leaderURL?: string;
}

export type NextWork =
  | { done: true }
  | { suspended: true }
  | { waitMs: number }
  | { leaseId: string; index: number; attempt: number; row: unknown; expiresAt: number; ttlMs: number };

/** Renew a lease three times per TTL, so one lost renewal never lets it lapse. */
export const renewIntervalMs = (ttlMs: number) => Math.max(200, Math.floor(ttlMs / 3));

export interface JobInfo {
  spec: RolloutJobSpec;
  items: number;
  environmentConfig: Record<string, unknown>;
  suspended: boolean;
}

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
    this.#jobPath = `/v1/jobs/${encodeURIComponent(options.namespace)}/${encodeURIComponent(options.job)}`;
    this.#configured = options.url.replace(/\/$/, "");
    this.#base = this.#configured;
    this.#token = options.token;
  }

  async call<T>(action: string, body: object = {}, signal?: AbortSignal): Promise<T> {
    const { status, payload } = await this.#send(action, body, signal);
    if (status < 300) return payload as T;
    // Sandbox failures keep their kind across the wire so the group core retries them as infrastructure errors.
    if (payload.kind) throw new SandboxError(payload.kind as SandboxError["kind"], payload.error ?? `HTTP ${status}`);
    throw new RunnersApiError(status, payload.error ?? `HTTP ${status}`);
  }

  /**
   * Retries while the controller is unreachable or not yet serving the job (restart, leader failover) for up to
   * `#unreachableMs`: a runner outlives a controller restart and keeps its leases by renewing them with the new leader.
   */
  async #send(action: string, body: object, signal?: AbortSignal): Promise<{ status: number; payload: ApiPayload }> {
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
        const payload = (await response.json().catch(() => ({}))) as ApiPayload;
        if (!payload.retry) return { status: response.status, payload };
        retryable = new RunnersApiError(response.status, payload.error ?? "retry");
        // A follower names the leader: go there directly (the token stays with us, unlike on an HTTP redirect).
        if (payload.leaderURL) this.#base = payload.leaderURL.replace(/\/$/, "");
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
    return this.call("info");
  }
  next(runner: string): Promise<NextWork> {
    return this.call("next", { runner });
  }
  renew(leaseId: string): Promise<{ expiresAt: number; suspended: boolean }> {
    return this.call("renew", { leaseId });
  }
  handBack(leaseId: string): Promise<unknown> {
    return this.call("handback", { leaseId });
  }
  fail(leaseId: string): Promise<unknown> {
    return this.call("fail", { leaseId });
  }
  submitGroup(index: number, attempt: number, scores: number[], group: unknown): Promise<{ stored: boolean }> {
    return this.call("groups", { index, attempt, scores, group });
  }

  /**
   * A slot call whose every failure is a SandboxError, as the LeasedSlot contract says: a lease the controller no
   * longer knows is "gone", anything else that is not the sandbox's own answer (API down past the retry window, an
   * HTTP error) "transient". So the group core retries the trajectory on another slot and never scores it.
   */
  async #slotCall<T>(action: string, body: object, signal?: AbortSignal): Promise<T> {
    try {
      return await this.call<T>(action, body, signal);
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
      acquire: async ({ trajectoryId, signal }) => {
        const lease = await this.#slotCall<{ leaseId: string; sandbox: string; slot: number; ttlMs: number }>(
          "slots/acquire",
          { trajectoryId },
          signal,
        );
        const timer = setInterval(
          () => void this.call("slots/renew", { leaseId: lease.leaseId }).catch(() => undefined),
          renewIntervalMs(lease.ttlMs),
        );
        timer.unref();
        const slot: LeasedSlot = {
          sandbox: lease.sandbox,
          slot: lease.slot,
          exec: (request: Omit<ExecRequest, "slot">) => this.#slotCall<ExecResult>("slots/exec", { leaseId: lease.leaseId, request }),
          readFile: async (path: string) => {
            const { base64 } = await this.#slotCall<{ base64: string }>("slots/read", { leaseId: lease.leaseId, path });
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
