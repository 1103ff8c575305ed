/**
 * The embedded pool: a backend built from a SandboxPool spec, a SlotPool over it and the PoolManager loop that
 * creates and replaces its sandboxes. `close()` terminates every sandbox the run created.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxPoolSpec } from "../api/index.ts";
import { LocalBackend } from "../backends/local/backend.ts";
import { PoolManager } from "../backends/slots/manager.ts";
import { SlotPool } from "../backends/slots/pool.ts";
import type { SandboxBackend } from "../backends/types.ts";
import { isolationPolicy, modalBackendFromSpec, nomadBackendFromSpec, type BackendEnvironment } from "../backends/factory.ts";
import { poolTemplate } from "../backends/template.ts";
import { slotPoolProvider } from "./slot-provider.ts";
import type { SlotProvider } from "../rollout/types.ts";
import { errorMessage } from "../base/errors.ts";

export interface EmbeddedPool {
  backend: SandboxBackend;
  slots: SlotProvider;
  slotPool: SlotPool;
  manager: PoolManager;
  /** Slots the pool can lease at once (maxSandboxes × slotsPerSandbox). */
  capacity: number;
  close(): Promise<void>;
}

/** What the embedded pool takes from the process environment, read once by the CLI. */
export interface EmbeddedPoolEnvironment extends BackendEnvironment {
  /** The token the Nomad sandbox servers answer (HERMES_SANDBOX_TOKEN); a fresh random one when unset. */
  sandboxToken?: string;
}

interface BuiltBackend {
  backend: SandboxBackend;
  cleanup: () => Promise<void>;
}

const nothingToClean = async (): Promise<void> => {};

/** Sandboxes as directories and processes on this host; a temporary root (removed after the run) by default. */
async function localBackend(spec: SandboxPoolSpec): Promise<BuiltBackend> {
  const owned = spec.local?.rootDir === undefined;
  const rootDir = spec.local?.rootDir ?? (await mkdtemp(join(tmpdir(), "hermes-run-")));
  return {
    backend: await LocalBackend.open({ rootDir, isolation: isolationPolicy(spec) }),
    cleanup: async () => (owned ? rm(rootDir, { recursive: true, force: true }) : undefined),
  };
}

/**
 * Outside a cluster credentialsSecretRef names a cluster Secret, unreadable here: Modal uses the SDK's own
 * lookup, Nomad the NOMAD_* environment the CLI passed. The sandbox servers answer only this run's token.
 */
async function modalBackend(spec: SandboxPoolSpec, environment: EmbeddedPoolEnvironment): Promise<BuiltBackend> {
  return { backend: await modalBackendFromSpec(spec, {}, environment), cleanup: nothingToClean };
}

async function nomadBackend(spec: SandboxPoolSpec, environment: EmbeddedPoolEnvironment): Promise<BuiltBackend> {
  const sandboxToken = environment.sandboxToken || randomBytes(24).toString("base64url");
  return { backend: await nomadBackendFromSpec(spec, { sandboxToken }, environment), cleanup: nothingToClean };
}

type BuildBackend = (spec: SandboxPoolSpec, environment: EmbeddedPoolEnvironment) => Promise<BuiltBackend>;

/** Pods need a cluster and its API: a kubernetes pool runs under the operator only. */
async function kubernetesBackend(): Promise<BuiltBackend> {
  throw new Error("backend kubernetes runs its sandboxes as pods and needs the operator: apply the SandboxPool to a cluster");
}

const backendFactories: Record<SandboxPoolSpec["backend"], BuildBackend> = {
  local: localBackend,
  modal: modalBackend,
  nomad: nomadBackend,
  kubernetes: kubernetesBackend,
};

/** Builds the backend a pool names. Modal and Nomad modules are loaded only when used. */
export function createBackend(spec: SandboxPoolSpec, environment: EmbeddedPoolEnvironment = {}): Promise<BuiltBackend> {
  return backendFactories[spec.backend](spec, environment);
}

export async function startEmbeddedPool(
  poolName: string,
  spec: SandboxPoolSpec,
  environment: EmbeddedPoolEnvironment = {},
): Promise<EmbeddedPool> {
  const { backend, cleanup } = await createBackend(spec, environment);
  // A pool the run cannot even list (credentials, address) fails now, not after every item's acquire timed out.
  try {
    await backend.list(poolName);
  } catch (error) {
    await backend.close();
    await cleanup();
    throw new Error(`SandboxPool ${poolName} (backend ${spec.backend}) is not reachable: ${errorMessage(error)}`, { cause: error });
  }
  const template = poolTemplate(poolName, spec);
  const leaseTtlMs = spec.leaseTTLSeconds * 1000;
  const slotPool = new SlotPool({ backend, template, leaseTtlMs });
  await slotPool.start();
  const manager = new PoolManager({
    backend,
    slotPool,
    min: spec.minSandboxes,
    max: spec.maxSandboxes,
    minPerImage: spec.minSandboxesPerImage,
    maxConcurrentCreates: spec.maxConcurrentCreates,
    intervalMs: 500,
  });
  manager.start();
  return {
    backend,
    slotPool,
    manager,
    slots: slotPoolProvider(slotPool, { acquireTimeoutMs: spec.acquireTimeoutSeconds * 1000, leaseTtlMs }),
    capacity: spec.maxSandboxes * spec.slotsPerSandbox,
    async close() {
      await manager.stop(true);
      slotPool.close();
      await backend.close();
      await cleanup();
    },
  };
}
