/**
 * npm run bench:kubernetes   (needs the local cluster and the project image: `npm run cluster:up`,
 * `eval "$(bash scripts/cluster/cluster.sh env)"`, `bash scripts/image/build.sh`)
 * On the kubernetes backend against the local cluster's real kubelet, in one run: the time to create a sandbox
 * pod until its /health readiness probe passes (sequential creates, so each is a cold pod start on an idle node),
 * and a warm slot acquire (acquire + release on the pods just made, ACQUIRERS at once). The last line is one JSON
 * object; warmVsCreateRatio = create p50 / warm acquire p50 ("how many times faster a warm slot is").
 */
import { PoolManager } from "../src/backends/slots/manager.ts";
import { SlotPool } from "../src/backends/slots/pool.ts";
import type { SandboxTemplate } from "../src/backends/types.ts";
import { clusterBackend, HERMES_IMAGE, SERVER_COMMAND } from "../test/integration/kubernetes/support.ts";

const SANDBOXES = 4;
const SLOTS_PER_SANDBOX = 10;
const ACQUIRERS = 20;
const ACQUIRES_PER_ACQUIRER = 25;

const percentile = (samples: number[], p: number): number => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
const template: SandboxTemplate = {
  pool: "bench-pods",
  image: HERMES_IMAGE,
  slots: SLOTS_PER_SANDBOX,
  cpu: 0.1,
  memoryMiB: 256,
  lifetimeSeconds: 3600,
  idleTimeoutSeconds: 0,
  templateHash: "bench-v1",
};

const { backend, cleanup } = await clusterBackend("hr-bench", { serverCommand: SERVER_COMMAND });
try {
  // Started first: sandboxes older than the slot pool would be held back one lease TTL (as after a restart).
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 60_000 });
  await slotPool.start();
  const createMs: number[] = [];
  for (let index = 0; index < SANDBOXES; index++) {
    const started = performance.now();
    await backend.create(`bench-pods-${index}`, template);
    createMs.push(performance.now() - started);
  }
  const manager = new PoolManager({ backend, slotPool, min: SANDBOXES, max: SANDBOXES });
  await manager.reconcile();
  if (slotPool.stats().slotsFree !== SANDBOXES * SLOTS_PER_SANDBOX) throw new Error(`pool not warm: ${JSON.stringify(slotPool.stats())}`);
  const acquireMs: number[] = [];
  await Promise.all(
    Array.from({ length: ACQUIRERS }, async (_, worker) => {
      for (let round = 0; round < ACQUIRES_PER_ACQUIRER; round++) {
        const started = performance.now();
        const lease = await slotPool.acquire(`bench-${worker}`, { timeoutMs: 30_000 });
        acquireMs.push(performance.now() - started);
        await slotPool.release(lease.id);
      }
    }),
  );
  await manager.stop(true);
  slotPool.close();
  const createP50Ms = percentile(createMs, 50);
  const acquireP50Ms = percentile(acquireMs, 50);
  const ratio = round(createP50Ms / acquireP50Ms, 0);
  console.log(`create a sandbox pod until ready: p50 ${round(createP50Ms, 0)} ms over ${createMs.length} pods`);
  console.log(
    `warm acquire (${SANDBOXES * SLOTS_PER_SANDBOX} slots, ${ACQUIRERS} concurrent, ${acquireMs.length} acquires): ` +
      `p50 ${round(acquireP50Ms)} ms, p99 ${round(percentile(acquireMs, 99))} ms -> warm is ${ratio}x faster`,
  );
  console.log(
    JSON.stringify({
      backend: "kubernetes",
      createP50Ms: round(createP50Ms, 1),
      warmAcquireP50Ms: round(acquireP50Ms),
      warmAcquireP99Ms: round(percentile(acquireMs, 99)),
      warmVsCreateRatio: ratio,
    }),
  );
} finally {
  await backend.close();
  await cleanup();
}
