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
import { poolTemplate } from "../backends/template.ts";
import { slotPoolProvider } from "./slot-provider.ts";
import type { SlotProvider } from "../rollout/types.ts";

export interface EmbeddedPool {
  backend: SandboxBackend;
  slots: SlotProvider;
  slotPool: SlotPool;
  manager: PoolManager;
  /** Slots the pool can lease at once (maxSandboxes × slotsPerSandbox). */
  capacity: number;
  close(): Promise<void>;
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
  return { backend: await LocalBackend.open({ rootDir }), cleanup: async () => (owned ? rm(rootDir, { recursive: true, force: true }) : undefined) };
}

/** Modal credentials resolved by the caller (a cluster Secret); unset fields fall back to the SDK's own lookup. */
export interface ModalCredentials {
  tokenId?: string;
  tokenSecret?: string;
}

/** Nomad credentials resolved by the caller (cluster Secrets, or NOMAD_* as for the `nomad` CLI). */
export interface NomadCredentials {
  token?: string;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  /** The pool's shared sandbox-server token. */
  sandboxToken?: string;
}

/**
 * Modal sandboxes through the real SDK. Without credentials the SDK uses MODAL_TOKEN_ID and MODAL_TOKEN_SECRET,
 * else ~/.modal.toml. Lifetime and idle timeout travel in the pool's sandbox template.
 */
export async function modalBackendFromSpec(spec: SandboxPoolSpec, credentials: ModalCredentials = {}): Promise<SandboxBackend> {
  const modal = spec.modal;
  if (!modal) throw new Error("spec.modal is required for backend modal");
  const { ModalBackend } = await import("../backends/modal/backend.ts");
  return new ModalBackend({
    appName: modal.appName,
    ...(modal.serverURL ? { serverUrl: modal.serverURL } : {}),
    maxConcurrentCreates: spec.maxConcurrentCreates,
    ...(modal.environment ? { environment: modal.environment } : {}),
    ...(modal.regions ? { regions: modal.regions } : {}),
    ...(credentials.tokenId ? { tokenId: credentials.tokenId } : {}),
    ...(credentials.tokenSecret ? { tokenSecret: credentials.tokenSecret } : {}),
  });
}

/** One Nomad job per sandbox, each running this same CLI's `sandbox-server` (the backend's default launcher). */
export async function nomadBackendFromSpec(spec: SandboxPoolSpec, credentials: NomadCredentials = {}): Promise<SandboxBackend> {
  const nomad = spec.nomad;
  if (!nomad) throw new Error("spec.nomad is required for backend nomad");
  const { NomadBackend } = await import("../backends/nomad/backend.ts");
  return new NomadBackend({
    address: nomad.address,
    namespace: nomad.namespace,
    datacenters: nomad.datacenters,
    driver: nomad.driver,
    ...(nomad.region ? { region: nomad.region } : {}),
    ...(credentials.token ? { token: credentials.token } : {}),
    ...(credentials.caCert ? { caCert: credentials.caCert } : {}),
    ...(credentials.clientCert ? { clientCert: credentials.clientCert } : {}),
    ...(credentials.clientKey ? { clientKey: credentials.clientKey } : {}),
    ...(credentials.sandboxToken ? { sandboxToken: credentials.sandboxToken } : {}),
  });
}

/**
 * Outside a cluster credentialsSecretRef names a cluster Secret, unreadable here: Modal uses the SDK's own
 * lookup, Nomad its client's NOMAD_* environment. The sandbox servers answer only this run's token
 * (HERMES_SANDBOX_TOKEN, else a fresh random one).
 */
async function modalBackend(spec: SandboxPoolSpec): Promise<BuiltBackend> {
  return { backend: await modalBackendFromSpec(spec), cleanup: nothingToClean };
}

async function nomadBackend(spec: SandboxPoolSpec): Promise<BuiltBackend> {
  const sandboxToken = process.env.HERMES_SANDBOX_TOKEN || randomBytes(24).toString("base64url");
  return { backend: await nomadBackendFromSpec(spec, { sandboxToken }), cleanup: nothingToClean };
}

const backendFactories: Record<SandboxPoolSpec["backend"], (spec: SandboxPoolSpec) => Promise<BuiltBackend>> = {
  local: localBackend,
  modal: modalBackend,
  nomad: nomadBackend,
};

/** Builds the backend a pool names. Modal and Nomad modules are loaded only when used. */
export function createBackend(spec: SandboxPoolSpec): Promise<BuiltBackend> {
  return backendFactories[spec.backend](spec);
}

export async function startEmbeddedPool(poolName: string, spec: SandboxPoolSpec): Promise<EmbeddedPool> {
  const { backend, cleanup } = await createBackend(spec);
  // A pool the run cannot even list (credentials, address) fails now, not after every item's acquire timed out.
  try {
    await backend.list(poolName);
  } catch (error) {
    await backend.close();
    await cleanup();
    throw new Error(`SandboxPool ${poolName} (backend ${spec.backend}) is not reachable: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
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
