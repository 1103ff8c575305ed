/**
 * npm run bench:controller
 * Against the real apiserver (the local cluster: `eval "$(bash scripts/cluster/cluster.sh env)"`), with the
 * controller as its own process (the operator's restricted kubeconfig, scoped to one namespace) on the local
 * backend (real sandbox directories and processes; a sandbox is cheap there). The controller, its sandbox servers
 * and the runner run the compiled build the image ships (`npm run build`, built first) with the image's NODE_OPTIONS
 * (the controller with the chart's controller environment):
 *  1. controller RSS with one SandboxPool of 100 sandboxes x 10 slots and 50 RolloutJobs (suspended, so each is
 *     loaded and tracked by the controller without 50 runner processes competing for the CPU);
 *  2. end-to-end overhead per trajectory: one job of instant trajectories (built-in noop model, shell-task with
 *     `check: true`) run by one runner process; overhead = job wall time / trajectories minus the raw work
 *     (the same check exec and slot reset straight on a LocalBackend, at the same concurrency) / trajectories;
 *  3. slot leases per second through the runners' API (acquire + release pairs, 50 concurrent clients).
 * Before all that, controllerIdleRssMiB: the controller's RSS once it leads and has settled, with nothing to manage;
 * controllerIdleRssSourceMiB the same for a controller run from the TypeScript sources (as tests run it, without
 * the image's NODE_OPTIONS), first.
 * The last line is one JSON object: controllerIdleRssMiB, controllerIdleRssSourceMiB, controllerRssMiB,
 * overheadPerTrajectoryMs, leasesPerSecond, and controllerMemoryMiB (what the loaded controller's RSS is made of, from
 * its own /metrics: V8 heap used and total, old space used, memory outside the heap).
 * The controller runs with the chart's controller environment (NODE_OPTIONS, MALLOC_ARENA_MAX); to try other V8
 * flags for it: BENCH_NODE_OPTIONS="...". To see what the
 * heap holds: BENCH_HEAP_SNAPSHOT=1 with BENCH_NODE_OPTIONS including `--heapsnapshot-signal=SIGUSR2
 * --diagnostic-dir=DIR`; the snapshot (a full GC first) is taken after the figures, and the split is printed again.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LocalBackend } from "../src/backends/local/backend.ts";
import type { SandboxTemplate } from "../src/backends/types.ts";
import { RunnersApiClient } from "../src/runner/client.ts";
import { kubectl } from "../test/support/cluster.ts";
import { runnerToken } from "../test/integration/operator/checks.ts";
import {
  apply,
  exists,
  getJson,
  installOperatorPrereqs,
  NODE_IP,
  startControllerProcess,
  startRunnerProcess,
  waitFor,
  type ControllerProcess,
} from "../test/integration/operator/harness.ts";

const SANDBOXES = 100;
const SLOTS = 10;
const JOBS = 50;
const TRAJECTORIES = 200;
const CONCURRENCY = 10;
const LEASE_CLIENTS = 50;
const LEASE_SECONDS = 5;
const TARGET_IDLE_RSS_MIB = 120;
const TARGET_RSS_MIB = 160;
const TARGET_OVERHEAD_MS = 10;
const repo = join(import.meta.dirname, "..");
const COMPILED_CLI = join(repo, "dist/bin/hermes-rollouts.js");
/** The image's NODE_OPTIONS (Dockerfile), given to the processes that run compiled. */
const IMAGE_NODE_OPTIONS = "--max-semi-space-size=8";
/** The chart's controller environment (deploy/helm deployment.yaml), or BENCH_NODE_OPTIONS to try other V8 flags. */
const CONTROLLER_ENV = { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS ?? "--max-semi-space-size=2", MALLOC_ARENA_MAX: "2" };
/** How long the idle controller runs before its RSS is read: its informers have listed, its first reconciles ran. */
const IDLE_SETTLE_MS = 5_000;

const namespace = `bench-${process.pid}`;
const round = (value: number, digits = 1) => Number(value.toFixed(digits));
const rssMiB = (pid: number, field: "VmRSS" | "VmHWM") =>
  Number(
    /(\d+) kB/.exec(
      readFileSync(`/proc/${pid}/status`, "utf8")
        .split("\n")
        .find((l) => l.startsWith(field)) ?? "",
    )?.[1],
  ) / 1024;
const trivialItems = (count: number) => Array.from({ length: count }, (_, i) => ({ id: `t${i}`, goal: "nothing", check: "true" }));
const job = (items: number, extra: object) => ({
  poolRef: { name: "pool" },
  environment: { name: "shell-task" },
  dataset: { inline: trivialItems(items) },
  model: { builtin: { policy: "noop" } },
  // The controller's runner pods name an image the node does not have (pull policy Never), so they never start:
  // the bench's own runner process does the work and the figures measure the controller, not pod start-up.
  groupSize: 1,
  runners: { replicas: 1, trajectoriesPerRunner: CONCURRENCY, image: "localhost/hermes-rollouts-bench-absent:none" },
  ...extra,
});

async function rawWorkMs(root: string): Promise<number> {
  const backend = await LocalBackend.open({ rootDir: root });
  const template: SandboxTemplate = {
    pool: "raw/pool",
    image: "host",
    slots: CONCURRENCY,
    cpu: 1,
    memoryMiB: 512,
    lifetimeSeconds: 3600,
    idleTimeoutSeconds: 0,
    templateHash: "raw",
  };
  const sandbox = await backend.create("raw", template);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, slot) => {
      while (next++ < TRAJECTORIES) {
        await backend.exec(sandbox, { slot, command: "true", timeoutMs: 60_000 });
        await backend.resetSlot(sandbox, slot);
      }
    }),
  );
  const elapsed = performance.now() - started;
  await backend.terminate(sandbox);
  await backend.close();
  return elapsed;
}

/** The controller's own split of its memory (prom-client's default metrics on /metrics), in MiB. */
async function memorySplitMiB(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sample = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN) / 2 ** 20;
  return {
    heapUsed: round(sample(/^nodejs_heap_size_used_bytes (\S+)/m)),
    heapTotal: round(sample(/^nodejs_heap_size_total_bytes (\S+)/m)),
    oldSpaceUsed: round(sample(/^nodejs_heap_space_size_used_bytes\{space="old"\} (\S+)/m)),
    external: round(sample(/^nodejs_external_memory_bytes (\S+)/m)),
  };
}

async function leasesPerSecond(controller: ControllerProcess, jobName: string): Promise<number> {
  const client = new RunnersApiClient({
    url: `http://127.0.0.1:${controller.port}`,
    namespace,
    job: jobName,
    token: runnerToken(namespace, jobName),
    unreachableMs: 0,
  });
  const deadline = performance.now() + LEASE_SECONDS * 1000;
  let leases = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: LEASE_CLIENTS }, async () => {
      while (performance.now() < deadline) {
        const lease = await client.call("slots/acquire", {});
        await client.call("slots/release", { leaseId: lease.leaseId });
        leases++;
      }
    }),
  );
  return leases / ((performance.now() - started) / 1000);
}

/** The RSS of a controller that leads and has settled with nothing to manage; it is stopped (and gives up the Lease). */
async function idleRssMiB(cli?: string): Promise<number> {
  const controller = await startControllerProcess({ namespace, identity: "bench", ...(cli ? { cli } : {}) });
  try {
    await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS));
    return rssMiB(controller.child.pid!, "VmRSS");
  } finally {
    await controller.kill();
  }
}

async function main(): Promise<void> {
  execFileSync(process.execPath, [join(repo, "scripts/build.ts")], { stdio: "inherit" });
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
  const idleRssSource = await idleRssMiB();
  Object.assign(process.env, CONTROLLER_ENV);
  const idleRss = await idleRssMiB(COMPILED_CLI);
  const controller = await startControllerProcess({ namespace, identity: "bench", cli: COMPILED_CLI });
  // The runner process and the raw work run with the image's settings.
  process.env.NODE_OPTIONS = IMAGE_NODE_OPTIONS;
  delete process.env.MALLOC_ARENA_MAX;
  let runner: ChildProcess | undefined;
  try {
    apply("SandboxPool", namespace, "pool", {
      backend: "local",
      minSandboxes: SANDBOXES,
      maxSandboxes: SANDBOXES,
      slotsPerSandbox: SLOTS,
      maxConcurrentCreates: 20,
    });
    await waitFor(() => getJson("sandboxpool", "pool", namespace).status?.slots?.total === SANDBOXES * SLOTS, 900_000, "100 x 10 slots");
    for (let i = 0; i < JOBS; i++) apply("RolloutJob", namespace, `idle-${i}`, job(20, { suspend: true }));
    await waitFor(
      () =>
        JSON.parse(kubectl(["get", "rolloutjobs", "-n", namespace, "-o", "json"])).items.filter((j: any) => j.status?.phase === "Suspended")
          .length === JOBS,
      180_000,
      "50 jobs loaded",
    );

    apply("RolloutJob", namespace, "instant", job(TRAJECTORIES, {}));
    await waitFor(() => exists("secret", "instant-runner-token", namespace), 30_000, "runner token");
    const started = performance.now();
    runner = startRunnerProcess(
      {
        HERMES_API_URL: `http://${NODE_IP}:${controller.port}`,
        HERMES_JOB_NAMESPACE: namespace,
        HERMES_JOB_NAME: "instant",
        HERMES_JOB_TOKEN: runnerToken(namespace, "instant"),
        HERMES_RUNNER_ID: "bench",
      },
      COMPILED_CLI,
    );
    let results: string | undefined;
    await waitFor(
      () => (results = getJson("rolloutjob", "instant", namespace).status?.resultsLocation) !== undefined,
      30_000,
      "the results location",
    );
    const stored = () => {
      try {
        return readFileSync(results!, "utf8").split("\n").length - 1;
      } catch {
        return 0;
      }
    };
    await waitFor(() => stored() >= TRAJECTORIES, 300_000, "every instant trajectory stored");
    const jobWallMs = performance.now() - started;
    const rawMs = await rawWorkMs(join(controller.dataDir, "raw"));
    const overhead = (jobWallMs - rawMs) / TRAJECTORIES;

    // Its lease cap (2 x replicas x trajectoriesPerRunner) admits every client at once.
    apply(
      "RolloutJob",
      namespace,
      "leases",
      job(1, { runners: { replicas: 1, trajectoriesPerRunner: LEASE_CLIENTS, image: "localhost/hermes-rollouts-bench-absent:none" } }),
    );
    await waitFor(() => exists("secret", "leases-runner-token", namespace), 30_000, "leases job token");
    const rate = await leasesPerSecond(controller, "leases");
    const rss = rssMiB(controller.child.pid!, "VmRSS");
    const peak = rssMiB(controller.child.pid!, "VmHWM");
    const memory = await memorySplitMiB(controller.port);
    if (process.env.BENCH_HEAP_SNAPSHOT) {
      controller.child.kill("SIGUSR2");
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      const after = JSON.stringify(await memorySplitMiB(controller.port));
      console.log(`heap snapshot in ${controller.dataDir}; after it: ${after} rss ${round(rssMiB(controller.child.pid!, "VmRSS"))}`);
    }

    console.log(
      `controller RSS (${SANDBOXES} sandboxes x ${SLOTS} slots, ${JOBS + 2} RolloutJobs, local backend): ` +
        `${round(rss)} MiB now, ${round(peak)} MiB peak; ` +
        `target <= ${TARGET_RSS_MIB} MiB (${round(rss / TARGET_RSS_MIB, 2)} of target)`,
    );
    console.log(
      `end to end: ${TRAJECTORIES} instant trajectories at concurrency ${CONCURRENCY} ` +
        `in ${round(jobWallMs)} ms (runner start-up included); ` +
        `raw work ${round(rawMs)} ms`,
    );
    console.log(
      `overhead per trajectory: ${round(overhead, 2)} ms; ` +
        `target <= ${TARGET_OVERHEAD_MS} ms (${round(overhead / TARGET_OVERHEAD_MS, 2)} of target)`,
    );
    console.log(
      `slot leases through the runners' API: ${round(rate)} acquire+release per second (${LEASE_CLIENTS} clients, ${LEASE_SECONDS} s)`,
    );
    console.log(
      `controller RSS idle (leading, nothing to manage): ${round(idleRss)} MiB compiled, ${round(idleRssSource)} MiB from the sources; ` +
        `target <= ${TARGET_IDLE_RSS_MIB} MiB (${round(idleRss / TARGET_IDLE_RSS_MIB, 2)} of target)`,
    );
    console.log(
      JSON.stringify({
        controllerIdleRssMiB: round(idleRss),
        controllerIdleRssSourceMiB: round(idleRssSource),
        controllerRssMiB: round(rss),
        controllerPeakRssMiB: round(peak),
        controllerMemoryMiB: memory,
        overheadPerTrajectoryMs: round(overhead, 2),
        leasesPerSecond: round(rate),
      }),
    );
  } finally {
    runner?.kill("SIGKILL");
    // A slow apiserver (a loaded machine) must not hide the bench's own error nor leave the controller running.
    try {
      kubectl(["delete", "rolloutjobs,sandboxpools", "--all", "-n", namespace, "--wait=true", "--timeout=120s"]);
    } catch (error) {
      console.error(`cleanup: ${String(error)}`);
    }
    await controller.kill();
    kubectl(["delete", "namespace", namespace, "--wait=false"]);
  }
}

await main();
