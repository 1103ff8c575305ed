/**
 * npm run bench:exec [-- --seconds 10] [--clients 50,200] [--lease-kubeconfig <file> [--lease-namespace default]]
 * Slot commands on the local backend (20 sandboxes x 10 slots, bwrap when it works), in one run, at C = 50 and 200
 * clients, each holding one leased slot and running `true` in it in a loop for the same time:
 *   - direct: the backend's own exec of the leased slot, nothing of ours around it;
 *   - api: `slots/exec` through the runners' API (the controller's routes, auth and validation, served in this
 *     process as the controller serves them), called by RunnersApiClients in a child process (bench/lib/exec-clients.ts):
 *     this process's event loop is then the controller's. The npm script starts it with setsid, so that, as a
 *     controller started as a service does, it leads its session and outranks its slot commands (cpu-priority.ts).
 * Also, at C = 50, direct execs on sandboxes without isolation: what a new set of namespaces per command costs.
 * execPerSecond* = commands finished per second; apiVsDirectP99Ratio = API p99 / direct p99 latency (target <= 1.3);
 * loopDelayP99Ms = this process's (the controller's) event-loop delay p99 while the API phase runs, sampled every 1 ms by
 * monitorEventLoopDelay, less that 1 ms resolution (target <= 20). The last line is one JSON object: the C = 200
 * figures at its top, the C = 50 ones under `c50`.
 * With --lease-kubeconfig, this process (the one serving the API, as a controller does) also holds a leader Lease of
 * its own in that cluster for the whole run, through the controller's LeaderElector, and the JSON line says whether
 * it kept it (leaseKept: never lost, and the Lease read back at the end still names it with no transition), how many
 * renewals it made (leaseRenewals, one per 2 s retry period) and the slowest one's round trip (leaseRenewMaxMs).
 * `npm run bench:leader` is the acceptance line "at 200 clients for 5 minutes the leader keeps its Lease, and no
 * request errors": --leader means --api-only --clients 200 --seconds 300 --lease-kubeconfig "$KUBECONFIG" (each can
 * still be given), --api-only skips the direct and unisolated phases:
 *   eval "$(bash scripts/cluster/cluster.sh env)" && npm run bench:leader
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { LocalBackend } from "../src/backends/local/backend.ts";
import { PoolManager } from "../src/backends/slots/manager.ts";
import { SlotPool } from "../src/backends/slots/pool.ts";
import type { IsolationMode } from "../src/backends/types.ts";
import type { Lease } from "../src/backends/slots/types.ts";
import type { SandboxBackend, SandboxTemplate } from "../src/backends/types.ts";
import { compareNamespaceModels, type NamespaceModels } from "./lib/namespaces-per-slot.ts";
import { serveRunnersApi, type ServedRunnersApi } from "./lib/runners-api.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string" },
    clients: { type: "string" },
    leader: { type: "boolean", default: false },
    "api-only": { type: "boolean", default: false },
    "lease-kubeconfig": { type: "string" },
    "lease-namespace": { type: "string", default: "default" },
  },
});
const PHASE_MS = Number(values.seconds ?? (values.leader ? "300" : "10")) * 1000;
const API_ONLY = values.leader || values["api-only"];
const LEASE_KUBECONFIG = values["lease-kubeconfig"] ?? (values.leader ? process.env.KUBECONFIG : undefined);
if (values.leader && LEASE_KUBECONFIG === undefined) throw new Error("--leader: KUBECONFIG or --lease-kubeconfig names the cluster");
const SANDBOXES = 20;
const SLOTS = 10;
const CLIENTS = (values.clients ?? (values.leader ? "200" : "50,200")).split(",").map(Number);
if (CLIENTS.some((c) => !Number.isInteger(c) || c < 1 || c > SANDBOXES * 10)) throw new Error(`--clients: 1..${SANDBOXES * 10} each`);
const COMMAND = { command: "true", timeoutMs: 60_000 };
const CLIENTS_SCRIPT = new URL("./lib/exec-clients.ts", import.meta.url).pathname;

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));
const percentile = (samples: number[], p: number): number => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

interface Phase extends Loop {
  execPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

interface Loop {
  loopDelayP99Ms: number;
  /** The share of the time the loop was busy (eventLoopUtilization): a delay with a low share is the host's CPU queue. */
  loopUtilization: number;
}

/** This process's event-loop delay p99 while `work` runs, sampled every 1 ms, less that resolution; and its utilization. */
async function withLoopDelay<T>(work: () => Promise<T>): Promise<[T, Loop]> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const before = performance.eventLoopUtilization();
  delay.enable();
  try {
    const value = await work();
    const loop = {
      loopDelayP99Ms: round(Math.max(0, delay.percentile(99) / 1e6 - 1)),
      loopUtilization: round(performance.eventLoopUtilization(before).utilization),
    };
    return [value, loop];
  } finally {
    delay.disable();
  }
}

function summary(latencies: number[], errors: number, seconds: number, loop: Loop): Phase {
  return {
    execPerSecond: round(latencies.length / seconds, 1),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    ...loop,
    errors,
  };
}

/** `clients` loops in this process, each running the command in its leased slot straight on the backend. */
async function directPhase(backend: SandboxBackend, leases: readonly Lease[]): Promise<Phase> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const [, loop] = await withLoopDelay(() =>
    Promise.all(
      leases.map(async (lease) => {
        while (performance.now() - started < PHASE_MS) {
          const begun = performance.now();
          try {
            await backend.exec(lease.sandbox, { ...COMMAND, slot: lease.slot });
            latencies.push(performance.now() - begun);
          } catch {
            errors++;
          }
        }
      }),
    ),
  );
  return summary(latencies, errors, (performance.now() - started) / 1000, loop);
}

/** `clients` runners in a child process calling `slots/exec` through the API this process serves. */
async function apiPhase(served: ServedRunnersApi, clients: number): Promise<Phase> {
  const settings = { url: served.url, token: served.token, clients, ms: PHASE_MS, request: COMMAND };
  const child = spawn(process.execPath, [CLIENTS_SCRIPT, JSON.stringify(settings)], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = once(child, "exit");
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.value !== "started") throw new Error(`the clients' process did not start: ${String(first.value)}`);
  // Measured from when every client holds its slot: the child's start-up is no part of it.
  const [last, loop] = await withLoopDelay(() => lines.next());
  const [code] = await exited;
  if (code !== 0 || typeof last.value !== "string") throw new Error(`the clients' process exited with ${String(code)}`);
  const { latencies, errors, seconds } = JSON.parse(last.value) as { latencies: number[]; errors: number; seconds: number };
  return summary(latencies, errors, seconds, loop);
}

/** A slot pool of `sandboxes` x SLOTS kept by the pool manager, ready when it returns. */
async function startPool(rootDir: string, isolation: IsolationMode, sandboxes: number) {
  const backend = await LocalBackend.open({ rootDir, isolation: { mode: isolation, network: "none" } });
  const template: SandboxTemplate = {
    pool: `bench-exec-${isolation}`,
    image: "host",
    slots: SLOTS,
    cpu: 1,
    memoryMiB: 512,
    lifetimeSeconds: 3600,
    idleTimeoutSeconds: 0,
    templateHash: "bench-exec-v1",
  };
  const slots = new SlotPool({ backend, template, leaseTtlMs: 600_000 });
  await slots.start();
  const manager = new PoolManager({ backend, slotPool: slots, min: sandboxes, max: sandboxes, maxConcurrentCreates: 4, intervalMs: 200 });
  manager.start();
  for (const deadline = performance.now() + 180_000; slots.stats().slotsFree < sandboxes * SLOTS;) {
    if (performance.now() > deadline) throw new Error(`${sandboxes} x ${SLOTS} slots not ready after 180 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { backend, slots, manager, pool: template.pool };
}

interface HeldLease {
  /** Never lost, and the Lease as the apiserver has it still names this process, with no transition since it took it. */
  kept: () => Promise<boolean>;
  renewals: () => { count: number; slowestMs: number };
  stop: () => Promise<void>;
}

/** A leader Lease held by this process for the whole run. */
async function holdLease(kubeconfigFile: string, namespace: string): Promise<HeldLease> {
  const { CoordinationV1Api, KubeConfig } = await import("@kubernetes/client-node");
  const { LeaderElector } = await import("../src/operator/runtime/leader.ts");
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigFile);
  let lost = false;
  let leading!: () => void;
  const started = new Promise<void>((resolve) => (leading = resolve));
  const elector = new LeaderElector({
    kubeConfig,
    namespace,
    name: `bench-exec-${process.pid}`,
    identity: `bench-exec-${process.pid}`,
    onStartedLeading: () => leading(),
    onStoppedLeading: () => (lost = true),
  });
  elector.start();
  await started;
  const api = kubeConfig.makeApiClient(CoordinationV1Api);
  const read = () => api.readNamespacedLease({ name: `bench-exec-${process.pid}`, namespace }).then((lease) => lease.spec);
  const taken = await read();
  return {
    kept: async () => {
      const now = await read();
      const holder = now?.holderIdentity === taken?.holderIdentity && now?.leaseTransitions === taken?.leaseTransitions;
      return !lost && elector.isLeader && holder;
    },
    renewals: () => elector.renewals,
    stop: () => elector.stop(),
  };
}

async function main(): Promise<void> {
  const lease = LEASE_KUBECONFIG === undefined ? undefined : await holdLease(LEASE_KUBECONFIG, values["lease-namespace"] ?? "default");
  const rootDir = await mkdtemp(join(tmpdir(), "hermes-bench-exec-"));
  const isolated = await startPool(join(rootDir, "bwrap"), "bwrap", SANDBOXES);
  const served = await serveRunnersApi(isolated.backend, isolated.slots, isolated.pool, Math.max(...CLIENTS));
  const figures: Record<number, { api: Phase; direct?: Phase }> = {};
  try {
    for (const clients of CLIENTS) {
      let direct: Phase | undefined;
      if (!API_ONLY) {
        const leases = await Promise.all(
          Array.from({ length: clients }, (_, i) => isolated.slots.acquire(`direct-${i}`, { timeoutMs: 30_000 })),
        );
        direct = await directPhase(isolated.backend, leases);
        await Promise.all(leases.map((lease) => isolated.slots.release(lease.id)));
        console.log(`C=${clients} direct: ${JSON.stringify(direct)}`);
      }
      const through = await apiPhase(served, clients);
      figures[clients] = { api: through, ...(direct === undefined ? {} : { direct }) };
      console.log(`C=${clients} api:    ${JSON.stringify(through)}`);
    }
  } finally {
    served.close();
    await isolated.manager.stop(true);
    await isolated.backend.close();
  }
  // The namespaces' own cost: the same direct execs with isolation off, at C = 50 (5 sandboxes hold its 50 slots).
  let unisolated: Phase | undefined;
  if (figures[50]?.direct !== undefined) {
    const bare = await startPool(join(rootDir, "none"), "none", 5);
    try {
      const leases = await Promise.all(Array.from({ length: 50 }, (_, i) => bare.slots.acquire(`bare-${i}`, { timeoutMs: 30_000 })));
      unisolated = await directPhase(bare.backend, leases);
      console.log(`C=50 direct, isolation none: ${JSON.stringify(unisolated)}`);
    } finally {
      await bare.manager.stop(true);
      await bare.backend.close();
    }
  }
  // Namespaces per command (today) vs one set per leased slot, at C = 50, from this process (bench/lib/namespaces-per-slot.ts).
  let models: NamespaceModels | undefined;
  if (unisolated !== undefined && isolated.backend.isolation.slotUser !== undefined) {
    models = await compareNamespaceModels(join(rootDir, "models"), isolated.backend.isolation.slotUser, 50, PHASE_MS, (samples) =>
      percentile(samples, 99),
    );
    console.log(`C=50 namespaces per command vs per slot: ${JSON.stringify(models)}`);
  }
  await rm(rootDir, { recursive: true, force: true });
  const leaseKept = await lease?.kept();
  const renewals = lease?.renewals();
  await lease?.stop();
  const headline = (clients: number) => {
    const { api, direct } = figures[clients]!;
    return {
      clients,
      execPerSecondApi: api.execPerSecond,
      loopDelayP99Ms: api.loopDelayP99Ms,
      loopUtilizationApi: api.loopUtilization,
      apiP99Ms: api.p99Ms,
      ...(direct === undefined
        ? {}
        : {
            execPerSecondDirect: direct.execPerSecond,
            apiVsDirectP99Ratio: round(api.p99Ms / direct.p99Ms),
            loopDelayP99MsDirect: direct.loopDelayP99Ms,
            directP99Ms: direct.p99Ms,
          }),
      errors: api.errors + (direct?.errors ?? 0),
    };
  };
  const [largest, ...others] = [...CLIENTS].sort((x, y) => y - x);
  console.log(
    JSON.stringify({
      ...headline(largest!),
      ...Object.fromEntries(others.map((clients) => [`c${clients}`, headline(clients)])),
      ...(unisolated === undefined
        ? {}
        : {
            execPerSecondDirectUnisolatedC50: unisolated.execPerSecond,
            isolationCostRatioC50: round(unisolated.execPerSecond / figures[50]!.direct!.execPerSecond),
          }),
      ...(models === undefined
        ? {}
        : {
            namespacesPerCommandExecPerSecondC50: models.execPerSecondPerCommand,
            namespacesPerSlotExecPerSecondC50: models.execPerSecondPerSlot,
            namespacesPerSlotSpeedupC50: round(models.execPerSecondPerSlot / models.execPerSecondPerCommand),
          }),
      ...(renewals === undefined ? {} : { leaseKept, leaseRenewals: renewals.count, leaseRenewMaxMs: round(renewals.slowestMs) }),
    }),
  );
}

await main();
