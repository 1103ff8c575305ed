import { logger } from "../../base/log.ts";
import type { SandboxBackend, SandboxInfo } from "../types.ts";

const log = logger("keepalive");

/** Probes per idle timeout: one missed or slow probe still leaves two before the backend gives up on a sandbox. */
const PROBES_PER_IDLE_TIMEOUT = 3;

export const keepAliveIntervalMs = (idleTimeoutSeconds: number) => (idleTimeoutSeconds * 1000) / PROBES_PER_IDLE_TIMEOUT;

/**
 * Backends end a sandbox nobody touched for the template's idle timeout (Modal's idleTimeoutMs, the local backend's
 * expiry): a safety net that removes what a dead controller left behind. While its pool lives, a sandbox is wanted
 * warm, leased or not, however long a holder's model thinks; so each ready sandbox gets a health probe (activity on
 * every backend) a few times per idle timeout.
 */
export class KeepAlive {
  readonly #probedAt = new Map<string, number>();

  /** The ready sandboxes whose probe is due, marked as probed now; a sandbox seen for the first time counts as fresh. */
  due(sandboxes: readonly SandboxInfo[], idleTimeoutSeconds: number, now: number): SandboxInfo[] {
    const listed = new Set(sandboxes.map((sandbox) => sandbox.name));
    for (const name of this.#probedAt.keys()) if (!listed.has(name)) this.#probedAt.delete(name);
    if (idleTimeoutSeconds <= 0) return [];
    const due: SandboxInfo[] = [];
    for (const sandbox of sandboxes) {
      if (sandbox.phase !== "ready") continue;
      const last = this.#probedAt.get(sandbox.name);
      if (last !== undefined && now - last < keepAliveIntervalMs(idleTimeoutSeconds)) continue;
      this.#probedAt.set(sandbox.name, now);
      if (last !== undefined) due.push(sandbox);
    }
    return due;
  }

  /** Probes what is due in the background: a slow sandbox never holds up the pass that noticed it. */
  probe(backend: SandboxBackend, sandboxes: readonly SandboxInfo[], idleTimeoutSeconds: number, now: number): void {
    for (const sandbox of this.due(sandboxes, idleTimeoutSeconds, now)) {
      backend.health(sandbox).then(
        (health) => {
          if (!health.ok) log.warn({ sandbox: sandbox.name, reason: health.message }, "keep-alive probe found the sandbox unhealthy");
        },
        (error: unknown) => log.warn({ err: error, sandbox: sandbox.name }, "keep-alive probe failed"),
      );
    }
  }
}
