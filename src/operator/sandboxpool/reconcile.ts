import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { validateSandboxPoolSpec, type SandboxPool } from "../../api/index.ts";
import type { IsolationMode, SandboxInfo, SandboxTemplate } from "../../backends/types.ts";
import type { ClusterClient } from "../client.ts";
import type { ReconcileResult } from "../runtime/controller.ts";
import type { Recorder } from "../runtime/events.ts";
import { keepAliveIntervalMs } from "../../backends/slots/keepalive.ts";
import { planSandboxes, type PlanOutput } from "../../backends/slots/plan.ts";
import { poolTemplate } from "../../backends/template.ts";
import type { PoolRuntime, PoolRuntimes } from "./runtimes.ts";
import { computePoolStatus } from "./status.ts";
import type { Clock } from "../../base/clock.ts";

export const POOL_FINALIZER = "hermes-rollouts.dev/sandboxes";

export interface PoolReconcilerDeps {
  getPool: (namespace: string, name: string) => SandboxPool | undefined;
  client: ClusterClient;
  runtimes: PoolRuntimes;
  recorder: Recorder;
  clock: Clock;
  /** Reconciles a pool again (a background create finished). */
  enqueue?: (key: string) => void;
  /** Sandbox name suffixes; injectable so tests get stable names. */
  suffix?: () => string;
}

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** observe (cache, backend, leases) → plan (pure) → apply (backend creates and terminations, then one status write). */
export function poolReconciler(deps: PoolReconcilerDeps) {
  const suffix = deps.suffix ?? (() => randomBytes(3).toString("hex"));
  const ref = (pool: SandboxPool) => ({
    kind: "SandboxPool" as const,
    namespace: pool.metadata.namespace ?? "default",
    name: pool.metadata.name,
  });

  async function writeStatus(pool: SandboxPool, status: SandboxPool["status"]): Promise<void> {
    if (!isDeepStrictEqual(status, pool.status)) await deps.client.patchStatus(ref(pool), status ?? {});
  }

  async function finalize(key: string, pool: SandboxPool): Promise<ReconcileResult> {
    const finalizers = pool.metadata.finalizers ?? [];
    if (!finalizers.includes(POOL_FINALIZER)) return {};
    const runtime = await deps.runtimes.ensure(key, ref(pool).namespace, pool.spec);
    // A create still in flight would land after the sweep: wait for it without holding this worker.
    if (runtime.creates.size > 0) return { requeueAfterMs: 1000 };
    const live = (await runtime.backend.list(key)).filter((s) => s.phase !== "terminated");
    await Promise.all(live.map((s) => runtime.backend.terminate(s)));
    if (live.length > 0)
      deps.recorder.event(pool, "Normal", "SandboxesTerminated", `terminated ${live.length} sandbox(es) of the deleted pool`);
    const left = (await runtime.backend.list(key)).filter((s) => s.phase !== "terminated");
    if (left.length > 0) return { requeueAfterMs: 2000 };
    await deps.runtimes.drop(key);
    await deps.client.setFinalizers(
      ref(pool),
      finalizers.filter((f) => f !== POOL_FINALIZER),
    );
    return {};
  }

  /** Runs one create in the background (the planner capped how many); its outcome lands in Events and the next pass. */
  function launchCreate(key: string, pool: SandboxPool, runtime: PoolRuntime, sandboxName: string, template: SandboxTemplate): void {
    runtime.creates.launch(
      sandboxName,
      async () => void (await runtime.backend.create(sandboxName, template)),
      (error) => {
        if (error === undefined) {
          runtime.createError = undefined;
          deps.recorder.event(pool, "Normal", "SandboxCreated", `created ${sandboxName}`);
        } else {
          runtime.createError = `create failed: ${errorMessage(error)}`;
          deps.recorder.event(pool, "Warning", "CreateFailed", runtime.createError);
        }
        deps.enqueue?.(key);
      },
    );
  }

  return async function reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = "default", name = key] = key.split("/");
    const pool = deps.getPool(namespace, name);
    if (!pool) return {};
    if (pool.metadata.deletionTimestamp) return finalize(key, pool);
    const generation = pool.metadata.generation ?? 0;
    const now = new Date(deps.clock.now());

    const validation = validateSandboxPoolSpec(pool.spec);
    if (!validation.ok) {
      const status = computePoolStatus({
        generation,
        previous: pool.status,
        sandboxes: [],
        templateHash: pool.status?.templateHash ?? "",
        slotsPerSandbox: 0,
        leased: 0,
        quarantined: 0,
        isolation: undefined,
        plan: undefined,
        invalid: validation.errors,
        now,
      });
      await writeStatus(pool, status);
      return {};
    }
    const spec = validation.value;
    // The finalizer goes on before the first sandbox exists, so a deleted pool never leaks one.
    if (!(pool.metadata.finalizers ?? []).includes(POOL_FINALIZER)) {
      await deps.client.setFinalizers(ref(pool), [...(pool.metadata.finalizers ?? []), POOL_FINALIZER]);
    }

    const template = poolTemplate(key, spec);
    let backendError: string | undefined;
    let sandboxes: SandboxInfo[] = [];
    let plan: PlanOutput | undefined;
    let isolation: IsolationMode | undefined;
    const runtime = await deps.runtimes.ensure(key, namespace, spec).catch((error: unknown) => {
      backendError = `backend ${spec.backend} unavailable: ${errorMessage(error)}`;
      return undefined;
    });
    if (runtime) {
      // A changed spec: new leases prefer sandboxes on the new template and get the new TTL.
      runtime.slots.setTemplate(template, spec.leaseTTLSeconds * 1000);
      runtime.acquireTimeoutMs = spec.acquireTimeoutSeconds * 1000;
      try {
        const creatingBefore = runtime.creates.names();
        sandboxes = await runtime.backend.list(key);
        runtime.keepAlive.probe(runtime.backend, sandboxes, template.idleTimeoutSeconds, deps.clock.now());
        runtime.slots.setSandboxes(sandboxes);
        const waiting = runtime.slots.waiting();
        plan = planSandboxes({
          observed: sandboxes.map((s) => ({ ...s, leasedSlots: runtime.slots.leasedSlots(s.name) })),
          templateHash: template.templateHash,
          min: spec.minSandboxes,
          max: spec.maxSandboxes,
          slotsPerSandbox: spec.slotsPerSandbox,
          waitingAcquirers: waiting,
          replace: runtime.slots.replacements(),
          inFlightCreates: runtime.creates.unlisted(creatingBefore, sandboxes),
          maxConcurrentCreates: spec.maxConcurrentCreates,
          allowScaleDown: waiting === 0,
          lifetimeSeconds: template.lifetimeSeconds,
          now: deps.clock.now(),
        });
        const byName = new Map(sandboxes.map((s) => [s.name, s]));
        for (const { name: sandboxName, reason } of plan.terminate) {
          const sandbox = byName.get(sandboxName);
          if (sandbox) await runtime.backend.terminate(sandbox);
          const replaced = reason === "failed" || reason === "terminated" || reason === "replace";
          deps.recorder.event(
            pool,
            replaced ? "Warning" : "Normal",
            replaced ? "SandboxReplaced" : "SandboxTerminated",
            `${sandboxName}: ${reason}${sandbox?.message ? ` (${sandbox.message})` : ""}`,
          );
        }
        for (let index = 0; index < plan.create; index++)
          launchCreate(key, pool, runtime, `${name}-${template.templateHash.slice(0, 5)}-${suffix()}`, template);
        if (plan.terminate.length > 0) {
          sandboxes = await runtime.backend.list(key);
          runtime.slots.setSandboxes(sandboxes);
        }
        backendError = runtime.createError;
        const ready = sandboxes.find((s) => s.phase === "ready");
        if (ready) isolation = (await runtime.backend.health(ready)).isolation;
      } catch (error) {
        backendError = errorMessage(error);
        deps.recorder.event(pool, "Warning", "BackendError", backendError);
      }
    }
    const stats = runtime?.slots.stats();
    const status = computePoolStatus({
      generation,
      previous: pool.status,
      sandboxes,
      templateHash: template.templateHash,
      slotsPerSandbox: spec.slotsPerSandbox,
      leased: stats?.slotsLeased ?? 0,
      quarantined: stats?.slotsQuarantined ?? 0,
      isolation,
      plan,
      backendError,
      now,
    });
    await writeStatus(pool, status);
    const settling = backendError !== undefined || (status.sandboxes?.starting ?? 0) > 0 || (runtime?.creates.size ?? 0) > 0;
    // Often enough for the keep-alive probes to beat the backend's idle timeout.
    return { requeueAfterMs: settling ? 1000 : Math.min(5000, keepAliveIntervalMs(template.idleTimeoutSeconds)) };
  };
}
