/**
 * npm run bench:slots [-- --backend local|modal]
 * Measures in one run: warm acquire p50/p99 (1,000 slots, 200 concurrent acquirers), acquire-from-warm vs
 * creating a sandbox, a tool call through the slot layer vs a raw exec of the same command (the SDK's bare
 * `sb.exec` on modal, the backend's exec on local), and a git
 * worktree reset vs a fresh clone. The last line is one JSON object with the headline figures.
 * Ratios are "how many times": warmVsCreateRatio = create time / warm acquire p50; toolCallVsRawExecRatio =
 * slot-layer p50 / raw p50 (target <= 1.10); resetVsCloneRatio = clone time / reset time (target >= 10);
 * apiVsDirectLeaseRatio = acquire+release pairs per second straight on the SlotPool / through the runners' API
 * (routes and RunnersApiClients in this process, 50 clients): what the API's HTTP, auth and validation cost a lease.
 * On local, also what isolation costs a tool call, p50 and p99: bwrapVsNone = bwrap (own network namespace) / a
 * plain process; netnsVsHostNetwork = bwrap with its own network namespace / bwrap with the host's; cgroupVsBwrap = the
 * same in a slot cgroup with limits (joined by a shell, killed after) / without (target <= 1.10); egressVsNetns = the
 * egress policy (slirp4netns per command) / a network namespace of its own.
 * On local, warmImageVsColdImageRatio = a group's first commands (G = 4 trajectories, one sandbox) on an OCI image with
 * no sandbox, which the pool unpacks and creates on demand / on the same image once its sandbox is warm (target >= 50),
 * for the group's first command to return (and ...GroupRatio: for all 4 first commands); medians over 5 images of
 * IMAGE_PAYLOAD_MIB each (imagePayloadMiB: the cold cost grows with the image, and real task images are GiBs).
 */
import { parseArgs } from "node:util";
import { PoolManager } from "../src/backends/slots/manager.ts";
import { SlotPool } from "../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../src/backends/types.ts";
import { benchBackends, type RawExec } from "./lib/backends.ts";
import { measureIsolation } from "./lib/isolation.ts";
import { leasesPerSecond, leasesThroughApi } from "./lib/runners-api.ts";
import { benchImages, measureImageStarts, type GroupStart } from "./lib/images.ts";

const { values } = parseArgs({ options: { backend: { type: "string", default: "local" } } });
const backendName = values.backend ?? "local";
const factory = benchBackends[backendName];
if (factory === undefined) throw new Error(`unknown backend ${backendName}: ${Object.keys(benchBackends).join(", ")}`);

const SANDBOXES = 100;
const SLOTS_PER_SANDBOX = 10;
const ACQUIRERS = 200;
const ACQUIRES_PER_ACQUIRER = 10;
const API_CLIENTS = 50;
const API_LEASE_MS = 3000;
/** What each bench image carries besides busybox: a SWE-smith image (a repository and its conda env) is several GiB. */
const IMAGE_PAYLOAD_MIB = 64;

const percentile = (samples: number[], p: number): number => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
const template = (pool: string, slots = SLOTS_PER_SANDBOX): SandboxTemplate => ({
  pool,
  image: "host",
  slots,
  cpu: 1,
  memoryMiB: 512,
  lifetimeSeconds: 3600,
  idleTimeoutSeconds: 0,
  templateHash: "bench-v1",
});

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

/** Warm acquire latency over SANDBOXES x SLOTS_PER_SANDBOX slots; also the time to create one sandbox. */
async function measureAcquire(
  backend: SandboxBackend,
): Promise<{ latencies: number[]; createMs: number[]; slotPool: SlotPool; manager: PoolManager }> {
  const poolTemplate = template("bench-acquire");
  const slotPool = new SlotPool({ backend, template: poolTemplate, leaseTtlMs: 60_000 });
  await slotPool.start();
  const createMs: number[] = [];
  const created: SandboxInfo[] = [];
  for (let index = 0; index < SANDBOXES; index++) {
    const [ms, info] = await timed(() => backend.create(`bench-${index}`, poolTemplate));
    createMs.push(ms);
    created.push(info);
  }
  const manager = new PoolManager({ backend, slotPool, min: SANDBOXES, max: SANDBOXES });
  await manager.reconcile();
  if (slotPool.stats().slotsFree !== SANDBOXES * SLOTS_PER_SANDBOX) throw new Error(`pool not warm: ${JSON.stringify(slotPool.stats())}`);
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: ACQUIRERS }, async (_, worker) => {
      for (let round = 0; round < ACQUIRES_PER_ACQUIRER; round++) {
        const [ms, lease] = await timed(() => slotPool.acquire(`w${worker}`, { timeoutMs: 30_000 }));
        latencies.push(ms);
        await slotPool.release(lease.id);
      }
    }),
  );
  return { latencies, createMs, slotPool, manager };
}

async function measureToolCall(rawExec: RawExec, slotPool: SlotPool): Promise<{ viaSlot: number[]; raw: number[] }> {
  const lease = await slotPool.acquire("tool-call", { timeoutMs: 10_000 });
  const request = { command: "echo hello", timeoutMs: 10_000 };
  const viaSlot: number[] = [];
  const raw: number[] = [];
  for (let index = 0; index < 5; index++) await rawExec(lease.sandbox, { ...request, slot: lease.slot }); // warm-up
  for (let index = 0; index < 60; index++) {
    raw.push((await timed(() => rawExec(lease.sandbox, { ...request, slot: lease.slot })))[0]);
    viaSlot.push((await timed(() => slotPool.exec(lease.id, request)))[0]);
  }
  await slotPool.release(lease.id);
  return { viaSlot, raw };
}

const GIT_ENV = { GIT_AUTHOR_NAME: "bench", GIT_AUTHOR_EMAIL: "b@x", GIT_COMMITTER_NAME: "bench", GIT_COMMITTER_EMAIL: "b@x" };

/** A repository of 4,000 small files in the sandbox cache (made by a trusted step: slots see the cache read-only);
 *  reset = `git reset --hard && git clean` of a dirtied worktree; clone = a fresh `git clone` over the file://
 *  transport (what a trajectory without slots would do). */
async function measureGit(backend: SandboxBackend): Promise<{ resetMs: number[]; cloneMs: number[] }> {
  const sandbox = await backend.create("bench-git", template("bench-git", 2));
  const run = async (slot: number, command: string, trusted = false): Promise<number> => {
    const [ms, result] = await timed(() => backend.exec(sandbox, { slot, command, env: GIT_ENV, timeoutMs: 120_000, trusted }));
    if (result.exitCode !== 0) throw new Error(`${command}: exit ${result.exitCode}: ${result.stderr}`);
    return ms;
  };
  await run(
    0,
    [
      'set -e; src="$HERMES_CACHE_DIR/src" && mkdir -p "$src" && cd "$src" && git init -q',
      "for d in $(seq 1 40); do mkdir d$d; for f in $(seq 1 100); do head -c 1024 /dev/urandom | base64 > d$d/f$f.txt; done; done",
      'git add -A && git commit -qm init && git clone -q --bare . "$HERMES_CACHE_DIR/repo.git" && rm -rf "$src"',
    ].join("; "),
    true,
  );
  await run(1, 'git clone -q "$HERMES_CACHE_DIR/repo.git" repo');
  const resetMs: number[] = [];
  const cloneMs: number[] = [];
  for (let index = 0; index < 5; index++) {
    await run(1, "cd repo && echo change >> d1/f1.txt && rm d2/f2.txt && mkdir -p build && echo x > build/out && echo y > new.txt");
    resetMs.push(await run(1, "cd repo && git reset -q --hard HEAD && git clean -qxdff"));
    cloneMs.push(await run(0, `rm -rf fresh && git clone -q "file://$HERMES_CACHE_DIR/repo.git" fresh`));
  }
  const check = await backend.exec(sandbox, { slot: 1, command: "cd repo && git status --porcelain | wc -l", timeoutMs: 10_000 });
  if (check.stdout.trim() !== "0") throw new Error("worktree reset left changes behind");
  await backend.terminate(sandbox);
  return { resetMs, cloneMs };
}

const { backend, rawExec, teardown } = await factory();
try {
  const health = await backend.health(await backend.create("bench-health", template("bench-health", 1)));
  console.log(`backend ${backendName}, isolation ${health.isolation}${health.message ? ` (${health.message})` : ""}`);
  const { latencies, createMs, slotPool, manager } = await measureAcquire(backend);
  const acquireP50Ms = percentile(latencies, 50);
  const acquireP99Ms = percentile(latencies, 99);
  const createP50Ms = percentile(createMs, 50);
  console.log(
    `warm acquire (${SANDBOXES * SLOTS_PER_SANDBOX} slots, ${ACQUIRERS} concurrent, ${latencies.length} acquires): ` +
      `p50 ${round(acquireP50Ms)} ms, p99 ${round(acquireP99Ms)} ms`,
  );
  console.log(`create a sandbox: p50 ${round(createP50Ms)} ms -> warm acquire is ${round(createP50Ms / acquireP50Ms, 1)}x faster`);
  const { viaSlot, raw } = await measureToolCall(rawExec, slotPool);
  const toolCallVsRawExecRatio = percentile(viaSlot, 50) / percentile(raw, 50);
  console.log(
    `tool call "echo hello": via slot layer p50 ${round(percentile(viaSlot, 50))} ms, ` +
      `raw exec p50 ${round(percentile(raw, 50))} ms -> ${round(toolCallVsRawExecRatio)}x`,
  );
  const direct = await leasesPerSecond(API_CLIENTS, API_LEASE_MS, async (worker) => {
    await slotPool.release((await slotPool.acquire(`w${worker}`, { timeoutMs: 30_000 })).id);
  });
  const viaApi = await leasesThroughApi(backend, slotPool, "bench-acquire", API_CLIENTS, API_LEASE_MS);
  const apiVsDirectLeaseRatio = direct / viaApi;
  console.log(
    `leases through the runners' API (in-process, ${API_CLIENTS} clients): ${round(viaApi, 0)}/s, ` +
      `straight on the SlotPool ${round(direct, 0)}/s -> ${round(apiVsDirectLeaseRatio, 1)}x`,
  );
  const isolationRatios: Record<string, number> = {};
  if (backendName === "local") {
    const samples = await measureIsolation(100);
    for (const p of [50, 99]) {
      const [none, hostNetwork, bwrap] = [samples.none, samples.bwrapHostNetwork, samples.bwrap].map((s) => percentile(s, p));
      console.log(
        `isolation, tool call p${p}: none ${round(none!)} ms, bwrap (host network) ${round(hostNetwork!)} ms, ` +
          `bwrap (own network) ${round(bwrap!)} ms -> ${round(bwrap! / none!)}x none, ${round(bwrap! / hostNetwork!)}x host network`,
      );
      isolationRatios[`bwrapVsNoneP${p}Ratio`] = round(bwrap! / none!);
      isolationRatios[`netnsVsHostNetworkP${p}Ratio`] = round(bwrap! / hostNetwork!);
      const [cgroup, egress] = [samples.bwrapCgroup, samples.bwrapEgress].map((s) => percentile(s, p));
      console.log(
        `isolation, tool call p${p}: in a slot cgroup ${round(cgroup!)} ms -> ${round(cgroup! / bwrap!)}x bwrap, ` +
          `egress ${round(egress!)} ms -> ${round(egress! / bwrap!)}x own network`,
      );
      if (samples.bwrapCgroup.length > 0) isolationRatios[`cgroupVsBwrapP${p}Ratio`] = round(cgroup! / bwrap!);
      isolationRatios[`egressVsNetnsP${p}Ratio`] = round(egress! / bwrap!);
    }
  }
  const { resetMs, cloneMs } = await measureGit(backend);
  const resetVsCloneRatio = percentile(cloneMs, 50) / percentile(resetMs, 50);
  console.log(
    `git (4,000 files): worktree reset p50 ${round(percentile(resetMs, 50))} ms, ` +
      `fresh clone p50 ${round(percentile(cloneMs, 50))} ms -> reset ${round(resetVsCloneRatio, 1)}x faster`,
  );
  await manager.stop(true);
  slotPool.close();
  const imageFigures: Record<string, number> = {};
  if (backendName === "local") {
    const images = await benchImages(5, IMAGE_PAYLOAD_MIB);
    const { cold, warm } = await measureImageStarts(backend, template("bench-images"), { groupSize: 4, images });
    const p50 = (groups: GroupStart[], key: keyof GroupStart) =>
      percentile(
        groups.map((group) => group[key]),
        50,
      );
    for (const [key, label, name] of [
      ["firstMs", "first command", "warmImageVsColdImageRatio"],
      ["allMs", "first commands of all 4", "warmImageVsColdImageGroupRatio"],
    ] as const) {
      const ratio = p50(cold, key) / p50(warm, key);
      console.log(
        `a group's ${label} (OCI images): cold image p50 ${round(p50(cold, key))} ms, ` +
          `warm image p50 ${round(p50(warm, key))} ms -> warm ${round(ratio, 1)}x faster`,
      );
      imageFigures[name] = round(ratio, 1);
    }
    imageFigures["imagePayloadMiB"] = IMAGE_PAYLOAD_MIB;
  }
  console.log(
    JSON.stringify({
      backend: backendName,
      acquireP50Ms: round(acquireP50Ms),
      acquireP99Ms: round(acquireP99Ms),
      warmVsCreateRatio: round(createP50Ms / acquireP50Ms, 1),
      toolCallVsRawExecRatio: round(toolCallVsRawExecRatio),
      resetVsCloneRatio: round(resetVsCloneRatio, 1),
      apiVsDirectLeaseRatio: round(apiVsDirectLeaseRatio, 1),
      ...imageFigures,
      ...isolationRatios,
    }),
  );
} finally {
  await backend.close();
  await teardown();
}
