import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rolloutJobSpec } from "../../src/api/index.ts";
import { PoolLoop } from "../../src/backends/slots/loop.ts";
import type { SlotPool } from "../../src/backends/slots/pool.ts";
import type { SandboxBackend } from "../../src/backends/types.ts";
import { SpooledRows } from "../../src/operator/rolloutjob/rows.ts";
import { JobTracker } from "../../src/operator/rolloutjob/tracker.ts";
import { ActiveJobs } from "../../src/operator/runners-api/registry.ts";
import { runnersApi } from "../../src/operator/runners-api/routes.ts";
import { createProbeServer, listen } from "../../src/operator/runtime/http.ts";
import { ControllerMetrics } from "../../src/operator/runtime/metrics.ts";
import { RunnersApiClient } from "../../src/runner/client.ts";

/** Acquire + release pairs per second by `workers` loops, each calling `lease` until `ms` have passed. */
export async function leasesPerSecond(workers: number, ms: number, lease: (worker: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let leases = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      while (performance.now() - started < ms) {
        await lease(worker);
        leases++;
      }
    }),
  );
  return leases / ((performance.now() - started) / 1000);
}

/** The runners' API of one job over a pool, served in this process, and clients that call it as runners do. */
export interface ServedRunnersApi {
  url: string;
  token: string;
  client: () => RunnersApiClient;
  close: () => void;
}

const TOKEN = "bench-token-0123456789abcdef0123456789abcdef";

/**
 * The runners' API routes over `slots` (one job of pool `pool`), served in this process as the controller serves
 * them (the same routes, auth and validation): what the API adds to a slot call, without a cluster.
 */
export async function serveRunnersApi(backend: SandboxBackend, slots: SlotPool, pool: string, clients: number): Promise<ServedRunnersApi> {
  const dir = mkdtempSync(join(tmpdir(), "bench-runners-api-"));
  const items = [{ id: "t0" }];
  const jobs = new ActiveJobs();
  jobs.set({
    key: "bench/leases",
    uid: "bench-leases",
    poolKey: pool,
    token: TOKEN,
    spec: rolloutJobSpec.parse({
      poolRef: { name: "pool" },
      environment: { name: "shell-task" },
      dataset: { inline: items },
      model: { builtin: { policy: "noop" } },
      // As many runners' trajectories as clients: the API caps a job's slots by what its runners use at once.
      runners: { replicas: clients, trajectoriesPerRunner: 1 },
    }),
    rows: await SpooledRows.open(join(dir, "rows.jsonl"), () => ({ rows: items })),
    environmentConfig: {},
    tracker: new JobTracker({
      resultsPath: join(dir, "results.jsonl"),
      journalPath: join(dir, "journal.jsonl"),
      items: 1,
      backoffLimit: 1,
      leaseTTLMs: 60_000,
    }),
    forwarder: undefined,
    suspended: false,
    poolGone: false,
    slotLeases: new Set(),
    onProgress: () => {},
  });
  // The routes reach only the pool's slots and acquire timeout: the loop is never stepped here.
  const runtime = {
    backend,
    slots,
    acquireTimeoutMs: 30_000,
    warmCaps: { maxSandboxes: 1, minPerImage: 0 },
    loop: new PoolLoop({ backend, slotPool: slots, scaleDownDelayMs: 0 }),
  };
  const metrics = new ControllerMetrics();
  const server = createProbeServer({
    registry: metrics.registry,
    healthy: () => true,
    ready: () => true,
    routes: [runnersApi(jobs, (key) => (key === pool ? runtime : undefined), metrics)],
  });
  const url = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
  return {
    url,
    token: TOKEN,
    client: () => new RunnersApiClient({ url, namespace: "bench", job: "leases", token: TOKEN }),
    close: () => {
      server.closeAllConnections();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `clients` RunnersApiClients leasing through the served API: acquire + release pairs per second. */
export async function leasesThroughApi(
  backend: SandboxBackend,
  slots: SlotPool,
  pool: string,
  clients: number,
  ms: number,
): Promise<number> {
  const served = await serveRunnersApi(backend, slots, pool, clients);
  try {
    const api = Array.from({ length: clients }, () => served.client());
    return await leasesPerSecond(clients, ms, async (worker) => {
      const lease = await api[worker]!.call("slots/acquire", {});
      await api[worker]!.call("slots/release", { leaseId: lease.leaseId });
    });
  } finally {
    served.close();
  }
}
