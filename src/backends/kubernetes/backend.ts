import type { V1Pod } from "@kubernetes/client-node";
import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, SandboxError } from "../../base/errors.ts";
import { realClock, type Clock } from "../../base/clock.ts";
import { logger } from "../../base/log.ts";
import { SandboxServerClient } from "../sandbox-server/client.ts";
import type { SandboxBackend, SandboxInfo, SandboxRef, SandboxTemplate } from "../types.ts";
import { ServedSlots } from "../sandbox-server/served.ts";
import { describePod, poolSelector, SANDBOX_PORT, sandboxPod, type PodSettings } from "./pod.ts";

const log = logger("kubernetes-backend");
/** Bound of the deleted set: far more pods than a pool turns over within their grace periods. */
const MAX_REMEMBERED_DELETED = 10_000;

/**
 * The few pod calls the backend makes, in one namespace. The operator builds it over its cluster client
 * (src/operator/backends.ts); a failed call throws the client's error, whose `code` is the HTTP status.
 */
export interface SandboxPodApi {
  create(pod: V1Pod): Promise<void>;
  /** undefined when there is no such pod. */
  read(name: string): Promise<V1Pod | undefined>;
  list(labelSelector: string): Promise<V1Pod[]>;
  /** Deleting a pod that is gone succeeds. */
  delete(name: string): Promise<void>;
}

export interface KubernetesBackendOptions {
  pods: SandboxPodApi;
  pod: PodSettings;
  /** The token the pod's server reads from `pod.tokenSecret`; the backend sends it with every call. */
  sandboxToken: string;
  /** The time a created pod is stamped with (its createdAt); the real clock unless a test pins it. */
  clock?: Clock;
  /** How long create waits for the pod to pass its readiness probe. */
  readyTimeoutMs?: number;
  /** How often create reads the pod while it starts. */
  pollMs?: number;
  healthTimeoutMs?: number;
}

interface Target {
  uid: string;
  server: SandboxServerClient;
}

/** The HTTP status of a failed apiserver call (client-node's ApiException carries it as `code`). */
function apiStatus(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

/** An apiserver refusal as a SandboxError: a request the apiserver rejects (400, 403, 422) cannot succeed by retrying. */
function apiFailure(error: unknown, what: string): SandboxError {
  const status = apiStatus(error);
  const kind = status === 400 || status === 403 || status === 404 || status === 422 ? "configuration" : "transient";
  const body = (error as { body?: unknown }).body;
  const detail = typeof body === "string" && body.length > 0 ? body.slice(0, 500) : errorMessage(error);
  return new SandboxError(kind, `${what}: ${status ?? ""} ${detail}`.replace(/ {2,}/g, " "), { cause: error });
}

/**
 * Sandboxes as pods in the pool's namespace, one pod per sandbox, each running this project's sandbox server (the
 * one Nomad allocations run) on the pod's IP. Kubernetes keeps no state of ours: the pods' labels and annotations
 * are the listing, so a restarted controller adopts its pods by listing them. Each sandbox is pinned to the pod
 * UID first used; a pod deleted, evicted or failed under a call makes the call fail "gone" (the pool replaces it).
 */
export class KubernetesBackend extends ServedSlots<Target> implements SandboxBackend {
  readonly kind = "kubernetes" as const;
  private readonly options: KubernetesBackendOptions;
  private readonly pins = new Map<string, Target>();
  /**
   * Pods this backend deleted: they stay listed (deletionTimestamp set) through their grace period, and listing them
   * as terminated would make every pool step delete them again and report the same sandbox replaced each time.
   * Insertion-ordered, the oldest forgotten past a bound.
   */
  private readonly deleted = new Set<string>();

  constructor(options: KubernetesBackendOptions) {
    super();
    this.options = options;
  }

  async create(name: string, template: SandboxTemplate, options: { signal?: AbortSignal } = {}): Promise<SandboxInfo> {
    // Outside the try: a pod that cannot be built (no serverImage) is the pool's configuration, not the apiserver's.
    const pod = sandboxPod(name, template, this.options.pod, new Date((this.options.clock ?? realClock).now()));
    try {
      await this.options.pods.create(pod);
      log.info({ pod: name, pool: template.pool }, "created sandbox pod");
    } catch (error) {
      // Idempotent by name: a pod of that name exists already (a create that raced this one, or a restart).
      if (apiStatus(error) !== 409) throw apiFailure(error, `create pod ${name}`);
    }
    this.pins.delete(name);
    this.deleted.delete(name);
    const info = await this.waitReady(name, template.pool, options.signal);
    await this.target(name);
    return info;
  }

  async list(pool: string): Promise<SandboxInfo[]> {
    const pods = await this.options.pods.list(poolSelector(pool)).catch((error: unknown) => {
      throw apiFailure(error, `list pods of ${pool}`);
    });
    return pods
      .filter((pod) => !(pod.metadata?.deletionTimestamp && this.deleted.has(pod.metadata.name ?? "")))
      .map((pod) => describePod(pod, pool));
  }

  protected healthTimeoutMs(): number {
    return this.options.healthTimeoutMs ?? 5_000;
  }

  async terminate(sandbox: SandboxRef): Promise<void> {
    this.pins.delete(sandbox.id);
    this.deleted.add(sandbox.id);
    if (this.deleted.size > MAX_REMEMBERED_DELETED) this.deleted.delete(this.deleted.values().next().value!);
    await this.options.pods.delete(sandbox.id).catch((error: unknown) => {
      throw apiFailure(error, `delete pod ${sandbox.id}`);
    });
  }

  async close(): Promise<void> {
    this.pins.clear();
  }

  /** The pod as the apiserver has it now: deleted, replaced or failed, it is lost (and unpinned). */
  protected async lostReason(podName: string, target: Target): Promise<string | undefined> {
    const pod = await this.options.pods.read(podName).catch(() => undefined);
    const lost = lostReason(pod, target.uid);
    if (lost !== undefined) this.pins.delete(podName);
    return lost;
  }

  protected async target(podName: string): Promise<Target> {
    const pinned = this.pins.get(podName);
    if (pinned !== undefined) return pinned;
    const pod = await this.options.pods.read(podName).catch((error: unknown) => {
      throw apiFailure(error, `read pod ${podName}`);
    });
    const lost = lostReason(pod, undefined);
    if (lost !== undefined) throw new SandboxError("gone", `sandbox ${podName}: ${lost}`);
    const ip = pod?.status?.podIP;
    if (ip === undefined || pod?.metadata?.uid === undefined) throw new SandboxError("transient", `sandbox ${podName}: pod has no IP yet`);
    const host = ip.includes(":") ? `[${ip}]` : ip;
    const token = this.options.sandboxToken;
    const target = { uid: pod.metadata.uid, server: new SandboxServerClient({ baseUrl: `http://${host}:${SANDBOX_PORT}`, token }) };
    this.pins.set(podName, target);
    return target;
  }

  /** Reads the pod until its readiness probe passes; a pod that fails, or waits on something only a fix clears, ends the wait. */
  private async waitReady(podName: string, poolKey: string, signal: AbortSignal | undefined): Promise<SandboxInfo> {
    const timeoutMs = this.options.readyTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted)
        throw new SandboxError("transient", `sandbox ${podName}: stopped waiting for it (${errorMessage(signal.reason)})`);
      const pod = await this.options.pods.read(podName).catch((error: unknown) => {
        throw apiFailure(error, `read pod ${podName}`);
      });
      if (pod === undefined) throw new SandboxError("gone", `sandbox pod ${podName} disappeared while starting`);
      const info = describePod(pod, poolKey);
      if (info.phase === "ready") return info;
      // Left in place: the kubelet keeps retrying a pull and the scheduler a placement; the pool's status names the reason.
      if (info.phase === "failed" || info.stuck !== undefined)
        throw new SandboxError("configuration", `sandbox pod ${podName}: ${info.message ?? info.phase}`);
      if (info.phase === "terminated") throw new SandboxError("gone", `sandbox pod ${podName} was deleted while starting`);
      if (Date.now() >= deadline) {
        throw new SandboxError("transient", `sandbox pod ${podName} not ready after ${timeoutMs} ms: ${info.message ?? info.phase}`);
      }
      await sleep(this.options.pollMs ?? 250);
    }
  }
}

/** Why a pod no longer serves the sandbox it was (gone, being deleted, ended, or a new pod under the same name). */
function lostReason(pod: V1Pod | undefined, pinnedUid: string | undefined): string | undefined {
  if (pod === undefined) return "pod is gone";
  if (pinnedUid !== undefined && pod.metadata?.uid !== pinnedUid) return "pod was replaced by another of the same name";
  const info = describePod(pod, "");
  if (info.phase === "terminated" || info.phase === "failed") return info.message ?? info.phase;
  return undefined;
}
