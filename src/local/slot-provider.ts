/**
 * `SlotProvider` over an in-process SlotPool (the embedded `hermes-rollouts run`): a lease per trajectory,
 * renewed in the background while the trajectory runs, released (and so reset) at the end. A lost lease
 * surfaces as SandboxError "gone", the same failure the rest of the core already retries.
 */
import type { SlotPool } from "../backends/slots/pool.ts";
import { logger } from "../base/log.ts";
import type { LeasedSlot, SlotProvider } from "../rollout/types.ts";
import { LeaseLostError, SandboxError } from "../base/errors.ts";

const log = logger("slot-provider");

export interface SlotPoolProviderOptions {
  acquireTimeoutMs: number;
  leaseTtlMs: number;
}

async function lostAsGone<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof LeaseLostError) throw new SandboxError("gone", error.message, { cause: error });
    throw error;
  }
}

export function slotPoolProvider(pool: SlotPool, options: SlotPoolProviderOptions): SlotProvider {
  return {
    async acquire({ trajectoryId, image, group, signal }) {
      const lease = await pool.acquire(trajectoryId, {
        timeoutMs: options.acquireTimeoutMs,
        ...(image !== undefined ? { image } : {}),
        ...(group !== undefined ? { group } : {}),
        ...(signal ? { signal } : {}),
      });
      const renewer = setInterval(
        () => {
          pool.renew(lease.id).catch((error: unknown) => log.warn({ lease: lease.id, err: error }, "lease renewal failed"));
        },
        Math.max(100, options.leaseTtlMs / 3),
      );
      renewer.unref();
      const slot: LeasedSlot = {
        sandbox: lease.sandbox.name,
        slot: lease.slot,
        image: lease.image,
        exec: (request) => lostAsGone(pool.exec(lease.id, request)),
        readFile: (path) => lostAsGone(pool.readFile(lease.id, path)),
        writeFile: (path, data) => lostAsGone(pool.writeFile(lease.id, path, data)),
        async release() {
          clearInterval(renewer);
          await pool.release(lease.id);
        },
      };
      return slot;
    },
  };
}
