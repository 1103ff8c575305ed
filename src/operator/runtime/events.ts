import { randomBytes } from "node:crypto";
import type { CoreV1Event } from "@kubernetes/client-node";
import { logger } from "../../base/log.ts";
import { realClock, type Clock } from "../../base/clock.ts";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface EventSink {
  create(namespace: string, event: CoreV1Event): Promise<void>;
  /** Bumps an existing event's count and lastTimestamp. */
  update(namespace: string, name: string, count: number, lastTimestamp: Date): Promise<void>;
}

export type EventType = "Normal" | "Warning";

export interface Recorder {
  event(target: EventTarget, type: EventType, reason: string, message: string): void;
}

/**
 * core/v1 Events with client-go's aggregation: the same (object, type, reason, message) seen again within the
 * window bumps `count` on the existing Event instead of creating a new one, so a failing reconcile loop does not
 * flood etcd. Sends are fire-and-forget: an Event is a hint, a failed send never fails a reconcile.
 */
export class EventRecorder implements Recorder {
  readonly #sink: EventSink;
  readonly #component: string;
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #seen = new Map<string, { name: string; count: number; at: number }>();
  readonly #log = logger("events");
  #pending: Promise<void> = Promise.resolve();
  #sweptAt = 0;

  constructor(sink: EventSink, options: { component?: string; clock?: Clock; windowMs?: number } = {}) {
    this.#sink = sink;
    this.#component = options.component ?? "hermes-rollouts-controller";
    this.#clock = options.clock ?? realClock;
    this.#windowMs = options.windowMs ?? 10 * 60_000;
  }

  event(target: EventTarget, type: EventType, reason: string, message: string): void {
    const namespace = target.metadata.namespace ?? "default";
    const key = [target.metadata.uid ?? `${namespace}/${target.metadata.name}`, type, reason, message].join("\u0000");
    const now = this.#clock.now();
    this.#forgetOutsideWindow(now);
    const previous = this.#seen.get(key);
    let send: () => Promise<void>;
    if (previous && now - previous.at < this.#windowMs) {
      previous.count++;
      previous.at = now;
      const { name, count } = previous;
      send = () => this.#sink.update(namespace, name, count, new Date(now));
    } else {
      const name = `${target.metadata.name}.${randomBytes(8).toString("hex")}`;
      this.#seen.set(key, { name, count: 1, at: now });
      const event: CoreV1Event = {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          name: target.metadata.name,
          namespace,
          uid: target.metadata.uid,
          resourceVersion: target.metadata.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.#component },
        count: 1,
        firstTimestamp: new Date(now),
        lastTimestamp: new Date(now),
      };
      send = () => this.#sink.create(namespace, event);
    }
    this.#pending = this.#pending.then(send).catch((error: unknown) => this.#log.warn({ err: error, reason }, "event not recorded"));
  }

  /** Events aggregation still remembers: those seen within the window (each unique message would stay forever). */
  get remembered(): number {
    return this.#seen.size;
  }

  /** Once per window, drops what can no longer be aggregated: memory stays bounded by one window's events. */
  #forgetOutsideWindow(now: number): void {
    if (now - this.#sweptAt < this.#windowMs) return;
    this.#sweptAt = now;
    for (const [key, seen] of this.#seen) if (now - seen.at >= this.#windowMs) this.#seen.delete(key);
  }

  /** Resolves when every event sent so far has been written (tests and shutdown). */
  flush(): Promise<void> {
    return this.#pending;
  }
}
