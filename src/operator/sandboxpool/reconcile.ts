import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { PoolCondition, PoolReason, validateSandboxPoolSpec, type SandboxPool, type SandboxPoolStatus } from "../../api/index.ts";
import { isIsolationUnavailable } from "../../backends/isolation.ts";
import type { IsolationMode, SandboxInfo } from "../../backends/types.ts";
import type { ClusterClient } from "../client.ts";
import type { ReconcileResult } from "../runtime/controller.ts";
import type { Recorder } from "../runtime/events.ts";
import { keepAliveIntervalMs } from "../../backends/slots/keepalive.ts";
import type { PoolStepHooks } from "../../backends/slots/loop.ts";
import type { PlanOutput } from "../../backends/slots/plan.ts";
import { poolTemplate } from "../../backends/template.ts";
import type { PoolIdentity, PoolRuntimes } from "./runtimes.ts";
import { computePoolStatus } from "./status.ts";
import { describeError } from "../../base/errors.ts";
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
  /** Where each pass's status is exported as gauges (sandboxes by image, slots). */
  exportMetrics?: (pool: string, status: SandboxPoolStatus) => void;
  /** Sandbox name suffixes; injectable so tests get stable names. */
  suffix?: () => string;
}

/** observe (cache, backend, leases) → plan (pure) → apply (backend creates and terminations, then one status write). */
export function poolReconciler(deps: PoolReconcilerDeps) {
  const suffix = deps.suffix ?? (() => randomBytes(3).toString("hex"));
  const ref = (pool: SandboxPool) => ({
    kind: "SandboxPool" as const,
    namespace: pool.metadata.namespace ?? "default",
    name: pool.metadata.name,
  });
  const identity = (key: string, pool: SandboxPool): PoolIdentity => {
    const { namespace, name } = ref(pool);
    return { key, namespace, name, uid: pool.metadata.uid ?? "" };
  };

  async function writeStatus(pool: SandboxPool, status: SandboxPool["status"]): Promise<void> {
    if (!isDeepStrictEqual(status, pool.status)) await deps.client.patchStatus(ref(pool), status ?? {});
  }

  /** An Event when the Isolated condition changes reason: a pool that loses (or never gets) isolation says so. */
  function recordIsolationChange(pool: SandboxPool, status: NonNullable<SandboxPool["status"]>): void {
    const isolated = (conditions: SandboxPoolStatus["conditions"]) => conditions?.find((c) => c.type === PoolCondition.Isolated);
    const now = isolated(status.conditions);
    if (now === undefined || now.reason === isolated(pool.status?.conditions)?.reason) return;
    if (now.reason === PoolReason.ProbeFailed) deps.recorder.event(pool, "Warning", "IsolationUnavailable", now.message ?? "");
    if (now.reason === PoolReason.DisabledBySpec) deps.recorder.event(pool, "Warning", "IsolationDisabled", now.message ?? "");
    if (now.reason === PoolReason.Bubblewrap) deps.recorder.event(pool, "Normal", "Isolated", "slots run under bubblewrap");
  }

  async function finalize(key: string, pool: SandboxPool): Promise<ReconcileResult> {
    const finalizers = pool.metadata.finalizers ?? [];
    if (!finalizers.includes(POOL_FINALIZER)) return {};
    // Defaults applied, as in a pass (the runtime may not exist yet after a restart); a spec made invalid later as given.
    const validation = validateSandboxPoolSpec(pool.spec);
    const spec = validation.ok ? validation.value : pool.spec;
    const runtime = await deps.runtimes.ensure(identity(key, pool), spec).catch((error: unknown) => {
      if (!isIsolationUnavailable(error)) throw error;
      // Tearing down runs no slot command: a pool whose isolation cannot start is still deleted, with its sandboxes.
      return deps.runtimes.ensure(identity(key, pool), { ...spec, isolation: { ...spec.isolation, mode: "none" } });
    });
    // A create still in flight would land after the sweep: wait for it without holding this worker.
    if (runtime.loop.creating > 0) return { requeueAfterMs: 1000 };
    const { terminated, failures } = await runtime.loop.terminateAll();
    if (failures.length > 0) throw failures[0];
    if (terminated > 0)
      deps.recorder.event(pool, "Normal", "SandboxesTerminated", `terminated ${terminated} sandbox(es) of the deleted pool`);
    const left = (await runtime.backend.list(key)).filter((s) => s.phase !== "terminated");
    if (left.length > 0) return { requeueAfterMs: 2000 };
    await deps.runtimes.drop(key);
    await deps.client.setFinalizers(
      ref(pool),
      finalizers.filter((f) => f !== POOL_FINALIZER),
    );
    return {};
  }

  /** Step hooks of one reconcile: creates run in the background; their outcomes land in Events and the next pass. */
  function stepHooks(key: string, pool: SandboxPool): PoolStepHooks {
    return {
      sandboxName: (template) => `${pool.metadata.name}-${template.templateHash.slice(0, 5)}-${suffix()}`,
      terminated: (sandbox, reason) => {
        const replaced = reason === "failed" || reason === "terminated" || reason === "replace";
        deps.recorder.event(
          pool,
          replaced ? "Warning" : "Normal",
          replaced ? "SandboxReplaced" : "SandboxTerminated",
          `${sandbox.name}: ${reason}${sandbox.message ? ` (${sandbox.message})` : ""}`,
        );
      },
      created: (info) => deps.recorder.event(pool, "Normal", "SandboxCreated", `created ${info.name}`),
      createFailed: (_name, message) => deps.recorder.event(pool, "Warning", "CreateFailed", message),
      createSettled: () => deps.enqueue?.(key),
    };
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
        image: "",
        templateHash: pool.status?.templateHash ?? "",
        slotsPerSandbox: 0,
        leased: 0,
        quarantined: 0,
        isolation: undefined,
        isolationMode: "bwrap",
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
    let isolationError: string | undefined;
    let isolationMessage: string | undefined;
    const runtime = await deps.runtimes.ensure(identity(key, pool), spec).catch((error: unknown) => {
      if (isIsolationUnavailable(error)) isolationError = describeError(error);
      else backendError = `backend ${spec.backend} unavailable: ${describeError(error)}`;
      return undefined;
    });
    if (runtime) {
      // A changed spec: new leases prefer sandboxes on the new template and get the new TTL.
      runtime.slots.setTemplate(template, spec.leaseTTLSeconds * 1000);
      runtime.acquireTimeoutMs = spec.acquireTimeoutSeconds * 1000;
      runtime.warmCaps = { maxSandboxes: spec.maxSandboxes, minPerImage: spec.minSandboxesPerImage };
      try {
        const step = await runtime.loop.step(
          {
            min: spec.minSandboxes,
            max: spec.maxSandboxes,
            minPerImage: spec.minSandboxesPerImage,
            maxConcurrentCreates: spec.maxConcurrentCreates,
            now: now.getTime(),
          },
          stepHooks(key, pool),
        );
        sandboxes = step.sandboxes;
        plan = step.plan;
        if (step.halted !== undefined) throw step.halted;
        backendError = runtime.loop.createError;
        const ready = sandboxes.find((s) => s.phase === "ready");
        if (ready) {
          const health = await runtime.backend.health(ready);
          isolation = health.isolation;
          isolationMessage = health.message;
          // Fail closed: a sandbox that runs slots unconfined under bwrap (an old server, a fallback) stops the pool.
          if (spec.isolation.mode === "bwrap" && health.ok && isolation === "none") {
            isolationError = `sandbox ${ready.name} runs slots without isolation: ${health.message ?? "no reason given"}`;
          }
        }
      } catch (error) {
        backendError = describeError(error);
        deps.recorder.event(pool, "Warning", "BackendError", backendError);
      }
    }
    const stats = runtime?.slots.stats();
    const status = computePoolStatus({
      generation,
      previous: pool.status,
      sandboxes,
      image: spec.image,
      leasedBySandbox: new Map(sandboxes.map((sandbox) => [sandbox.name, runtime?.slots.leasedSlots(sandbox.name) ?? 0])),
      templateHash: template.templateHash,
      slotsPerSandbox: spec.slotsPerSandbox,
      leased: stats?.slotsLeased ?? 0,
      quarantined: stats?.slotsQuarantined ?? 0,
      isolation,
      isolationMode: spec.isolation.mode,
      ...(isolationMessage === undefined ? {} : { isolationMessage }),
      ...(isolationError === undefined ? {} : { isolationError }),
      plan,
      backendError,
      now,
    });
    recordIsolationChange(pool, status);
    deps.exportMetrics?.(key, status);
    await writeStatus(pool, status);
    const settling = backendError !== undefined || (status.sandboxes?.starting ?? 0) > 0 || (runtime?.loop.creating ?? 0) > 0;
    // Often enough for the keep-alive probes to beat the backend's idle timeout.
    return { requeueAfterMs: settling ? 1000 : Math.min(5000, keepAliveIntervalMs(template.idleTimeoutSeconds)) };
  };
}
