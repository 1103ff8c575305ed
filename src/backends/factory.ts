/**
 * Backends built from a SandboxPool spec, shared by the operator (credentials from cluster Secrets) and the local
 * `run` (credentials from the SDK's or client's own lookup). Modal, Nomad and Kubernetes modules load only when a pool uses them.
 */
import { kubernetesBlock, parseQuantity, type SandboxPoolSpec } from "../api/index.ts";
import { SLOT_MAX_PROCESSES } from "./isolation.ts";
import type { SandboxPodApi } from "./kubernetes/backend.ts";
import type { PodSettings } from "./kubernetes/pod.ts";
import type { NomadEnvironment } from "./nomad/config.ts";
import type { IsolationPolicy, SandboxBackend } from "./types.ts";

/**
 * The pool's isolation with its per-slot limits resolved: what spec.isolation.limits leaves unset is the slot's
 * share of the sandbox's memory, the sandbox's CPU and SLOT_MAX_PROCESSES. The workspace is capped only when asked:
 * each cap is a loop-mounted filesystem per slot, and a pool of 1,000 slots starting at once made 1,000 mounts that
 * starved the host (the controller lost its Lease in bench:controller).
 */
export function isolationPolicy(spec: SandboxPoolSpec): IsolationPolicy {
  const { mode, network, limits = {} } = spec.isolation;
  return {
    mode,
    network,
    slotLimits: {
      memoryBytes: Math.floor(parseQuantity(limits.memory ?? spec.resources.memory) / (limits.memory ? 1 : spec.slotsPerSandbox)),
      cpuMillis: Math.round(parseQuantity(limits.cpu ?? spec.resources.cpu) * 1000),
      pids: limits.pids ?? SLOT_MAX_PROCESSES,
      ...(limits.workspace === undefined ? {} : { workspaceBytes: parseQuantity(limits.workspace) }),
    },
  };
}

/** Modal credentials resolved by the caller (a cluster Secret); unset fields fall back to the SDK's own lookup. */
export interface ModalCredentials {
  tokenId?: string;
  tokenSecret?: string;
}

/** Nomad credentials resolved by the caller (cluster Secrets); `BackendEnvironment.nomad` fills what they leave unset. */
export interface NomadCredentials {
  token?: string;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  /** The pool's shared sandbox-server token: every server requires it (an open server lets any slot drive the others). */
  sandboxToken: string;
}

/** What backends take from the process environment, read once by the CLI and passed down. */
export interface BackendEnvironment {
  /** NOMAD_* variables, read as the `nomad` CLI reads them: fallbacks under the spec's and the Secrets' values. */
  nomad?: NomadEnvironment;
  /**
   * Pools that bring the sandbox server into their image (docker Nomad pools, kubernetes pools without a
   * serverCommand) and name no `serverImage`: the hermes-rollouts image that brings it (the controller's own image;
   * HERMES_IMAGE for `run`).
   */
  serverImage?: string;
  /** MODAL_MAX_THROTTLE_WAIT, parsed: the bound on server-directed throttling waits per Modal call. */
  modalMaxThrottleWaitSecs?: number;
}

/**
 * Modal sandboxes through the real SDK. Without credentials the SDK uses MODAL_TOKEN_ID and MODAL_TOKEN_SECRET,
 * else ~/.modal.toml. Lifetime and idle timeout travel in the pool's sandbox template.
 */
export async function modalBackendFromSpec(
  spec: SandboxPoolSpec,
  credentials: ModalCredentials = {},
  environment: BackendEnvironment = {},
): Promise<SandboxBackend> {
  const modal = spec.modal;
  if (!modal) throw new Error("spec.modal is required for backend modal");
  const { ModalBackend } = await import("./modal/backend.ts");
  return new ModalBackend({
    appName: modal.appName,
    ...(modal.serverURL ? { serverUrl: modal.serverURL } : {}),
    maxConcurrentCreates: spec.maxConcurrentCreates,
    isolation: isolationPolicy(spec),
    ...(modal.environment ? { environment: modal.environment } : {}),
    ...(modal.regions ? { regions: modal.regions } : {}),
    ...(environment.modalMaxThrottleWaitSecs !== undefined ? { maxThrottleWaitSecs: environment.modalMaxThrottleWaitSecs } : {}),
    ...(credentials.tokenId ? { tokenId: credentials.tokenId } : {}),
    ...(credentials.tokenSecret ? { tokenSecret: credentials.tokenSecret } : {}),
  });
}

/** One Nomad job per sandbox, each running this same CLI's `sandbox-server` (the backend's default launcher). */
export async function nomadBackendFromSpec(
  spec: SandboxPoolSpec,
  credentials: NomadCredentials,
  environment: BackendEnvironment = {},
): Promise<SandboxBackend> {
  const nomad = spec.nomad;
  if (!nomad) throw new Error("spec.nomad is required for backend nomad");
  const serverImage = nomad.serverImage ?? environment.serverImage;
  const { NomadBackend } = await import("./nomad/backend.ts");
  return new NomadBackend({
    address: nomad.address,
    namespace: nomad.namespace,
    datacenters: nomad.datacenters,
    driver: nomad.driver,
    ...(serverImage !== undefined ? { serverImage } : {}),
    ...(nomad.region ? { region: nomad.region } : {}),
    ...(credentials.token ? { token: credentials.token } : {}),
    ...(credentials.caCert ? { caCert: credentials.caCert } : {}),
    ...(credentials.clientCert ? { clientCert: credentials.clientCert } : {}),
    ...(credentials.clientKey ? { clientKey: credentials.clientKey } : {}),
    sandboxToken: credentials.sandboxToken,
    isolation: isolationPolicy(spec),
    env: environment.nomad ?? {},
  });
}

/** Where a kubernetes pool's pods go and what they need, resolved by the operator (the pods' API, the pool, its token). */
export interface KubernetesPlacement extends Omit<PodSettings, "settings" | "isolation"> {
  pods: SandboxPodApi;
  sandboxToken: string;
}

/** One pod per sandbox in the pool's namespace, each running this project's `sandbox-server` (injected unless the image has it). */
export async function kubernetesBackendFromSpec(
  spec: SandboxPoolSpec,
  placement: KubernetesPlacement,
  environment: BackendEnvironment = {},
): Promise<SandboxBackend> {
  const { KubernetesBackend } = await import("./kubernetes/backend.ts");
  const { pods, sandboxToken, ...pod } = placement;
  const settings = spec.kubernetes ?? kubernetesBlock.parse({});
  const serverImage = settings.serverImage ?? environment.serverImage;
  return new KubernetesBackend({
    pods,
    sandboxToken,
    pod: { ...pod, isolation: isolationPolicy(spec), settings, ...(serverImage !== undefined ? { serverImage } : {}) },
  });
}
