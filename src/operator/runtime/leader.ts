import type { KubeConfig, V1Lease } from "@kubernetes/client-node";
import { CoordinationV1Api, V1MicroTime } from "../kube.ts";
import { logger } from "../../base/log.ts";
import { keepAliveApiClient } from "./keep-alive.ts";
import { realClock, type Clock } from "../../base/clock.ts";

export interface LeaderTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** controller-runtime's defaults. */
export const defaultTimings: LeaderTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export interface LeaseRecord {
  holder: string;
  leaseDurationSeconds: number;
  /** Our local clock when we last saw the record change (client-go's observedTime: no trust in remote clocks). */
  observedAt: number;
}

/**
 * Whether `identity` may write itself into the Lease now: it holds it (renew), nobody does, or the holder has not
 * renewed for a full lease duration as measured by our own clock since we last saw the record change.
 */
export function leaseDecision(record: LeaseRecord | undefined, identity: string, now: number): "acquire" | "renew" | "wait" {
  if (!record || record.holder === "") return "acquire";
  if (record.holder === identity) return "renew";
  return now >= record.observedAt + record.leaseDurationSeconds * 1000 ? "acquire" : "wait";
}

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  timings?: LeaderTimings;
  clock?: Clock;
  /** Written onto the Lease while this replica leads, e.g. where followers send runners. */
  annotations?: Record<string, string>;
  onStartedLeading: () => void;
  /** Called once when leadership is lost: the process must stop reconciling at once. */
  onStoppedLeading: () => void;
}

/** Lease-based leader election on coordination.k8s.io/v1 with optimistic concurrency on resourceVersion. */
export class LeaderElector {
  readonly #api: CoordinationV1Api;
  readonly #o: LeaderElectorOptions & { timings: LeaderTimings; clock: Clock };
  readonly #log;
  #observed: { key: string; at: number } | undefined;
  #holderAnnotations: Record<string, string> = {};
  #leading = false;
  #lastRenew = 0;
  #timer: unknown;
  #stopped = false;
  #renewals = 0;
  #slowestRenewMs = 0;

  constructor(options: LeaderElectorOptions) {
    this.#o = { ...options, timings: options.timings ?? defaultTimings, clock: options.clock ?? realClock };
    // Its own connection, kept open: a renewal neither waits for a TLS handshake nor queues behind other requests.
    this.#api = keepAliveApiClient(options.kubeConfig, CoordinationV1Api);
    this.#log = logger("leader").child({ identity: options.identity });
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** The annotations the current holder wrote on the Lease, as of the last read. */
  get holderAnnotations(): Readonly<Record<string, string>> {
    return this.#holderAnnotations;
  }

  /** Successful writes of the Lease (acquire or renew) and the slowest one's round trip: what load does to renewal. */
  get renewals(): { count: number; slowestMs: number } {
    return { count: this.#renewals, slowestMs: this.#slowestRenewMs };
  }

  start(): void {
    void this.#tick();
  }

  /** Stops campaigning; a leader releases the Lease so another replica takes over without waiting it out. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.clock.clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace });
      if (lease.spec?.holderIdentity !== this.#o.identity) return;
      lease.spec = {
        ...lease.spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: lease.spec.acquireTime && new V1MicroTime(lease.spec.acquireTime),
        renewTime: new V1MicroTime(this.#o.clock.now()),
      };
      await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease });
    } catch (error) {
      this.#log.warn({ err: error }, "could not release the lease");
    }
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    let ok = false;
    const started = performance.now();
    try {
      ok = await this.#withinRenewDeadline(this.#tryAcquireOrRenew(now), now);
    } catch (error) {
      this.#log.debug({ err: error }, "lease update failed");
    }
    if (this.#stopped) return;
    if (ok) {
      this.#renewals++;
      this.#slowestRenewMs = Math.max(this.#slowestRenewMs, performance.now() - started);
      this.#lastRenew = now;
      if (!this.#leading) {
        this.#leading = true;
        this.#log.info("became leader");
        this.#o.onStartedLeading();
      }
    } else if (this.#leading && this.#o.clock.now() - this.#lastRenew >= this.#o.timings.renewDeadlineMs) {
      this.#leading = false;
      this.#log.error("lost the lease: could not renew within the renew deadline");
      this.#o.onStoppedLeading();
    }
    this.#timer = this.#o.clock.setTimeout(() => void this.#tick(), this.#o.timings.retryPeriodMs);
  }

  /**
   * The attempt, or false once the renew deadline passes without its answer: a request to an apiserver that stopped
   * answering hangs for minutes, and a leader waiting on it would keep reconciling after another replica took over.
   */
  async #withinRenewDeadline(attempt: Promise<boolean>, now: number): Promise<boolean> {
    const { renewDeadlineMs } = this.#o.timings;
    let timer: unknown;
    const deadline = new Promise<boolean>((resolve) => {
      timer = this.#o.clock.setTimeout(() => resolve(false), this.#leading ? this.#lastRenew + renewDeadlineMs - now : renewDeadlineMs);
    });
    try {
      return await Promise.race([attempt, deadline]);
    } finally {
      this.#o.clock.clearTimeout(timer);
    }
  }

  async #tryAcquireOrRenew(now: number): Promise<boolean> {
    const { name, namespace, identity } = this.#o;
    const durationSeconds = Math.round(this.#o.timings.leaseDurationMs / 1000);
    let lease: V1Lease | undefined;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
    }
    const annotations = this.#o.annotations ?? {};
    if (!lease) {
      await this.#api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace, annotations },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: new V1MicroTime(now),
            renewTime: new V1MicroTime(now),
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    this.#holderAnnotations = spec.holderIdentity ? (lease.metadata?.annotations ?? {}) : {};
    const recordKey = `${spec.holderIdentity ?? ""}/${lease.metadata?.resourceVersion ?? ""}`;
    if (this.#observed?.key !== recordKey) this.#observed = { key: recordKey, at: now };
    const decision = leaseDecision(
      {
        holder: spec.holderIdentity ?? "",
        leaseDurationSeconds: spec.leaseDurationSeconds ?? durationSeconds,
        observedAt: this.#observed.at,
      },
      identity,
      now,
    );
    if (decision === "wait") return false;
    const takingOver = decision === "acquire";
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: new V1MicroTime(now),
      // Dates read back must be re-wrapped: a plain Date serializes with 3 fractional digits and 1.20 rejects it.
      acquireTime: new V1MicroTime(takingOver || !spec.acquireTime ? now : spec.acquireTime),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && spec.holderIdentity ? 1 : 0),
    };
    lease.metadata = { ...lease.metadata, annotations: { ...lease.metadata?.annotations, ...annotations } };
    // resourceVersion in metadata makes a concurrent writer's replace fail with 409: only one replica wins.
    await this.#api.replaceNamespacedLease({ name, namespace, body: lease });
    return true;
  }
}
