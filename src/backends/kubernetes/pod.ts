import { createHash } from "node:crypto";
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import type { KubernetesPoolSettings } from "../../api/index.ts";
import { SandboxError } from "../../base/errors.ts";
import { INJECT_STEP_NAME, injectArgs, injectedServerCommand } from "../sandbox-server/inject.ts";
import { slotEnvArgs } from "../sandbox-server/protocol.ts";
import { slotLimitArgs } from "../slot-limits.ts";
import type { IsolationPolicy, SandboxInfo, SandboxPhase, SandboxStuckReason, SandboxTemplate } from "../types.ts";

/**
 * A sandbox as a pod: the manifest the backend creates and what a listed pod means as a SandboxInfo. Pure, so the
 * kubelet's states (Kubernetes 1.20 field names, pkg/kubelet/container/sync_result.go and images/types.go for the
 * waiting reasons) are tested without a cluster.
 */

export const SANDBOX_PORT = 8080;
const DATA_DIR = "/data";
/** The initContainer that runs first in the sandbox image (see serverStart). */
const CHECK_IMAGE_STEP_NAME = "check-image";
/** The emptyDir the initContainer copies node and the server into, mounted read-only in the sandbox container. */
const INJECTED_SERVER_DIR = "/hermes";

export const LABELS = {
  /** The pool's name (the pod's namespace is the pool's). */
  pool: "hermes-rollouts.dev/pool",
  templateHash: "hermes-rollouts.dev/template-hash",
  /** A hash of the image: an image reference has `/` and `:`, which a label value cannot hold (the image is an annotation). */
  image: "hermes-rollouts.dev/image-hash",
  component: "app.kubernetes.io/component",
} as const;

export const ANNOTATIONS = {
  sandbox: "hermes-rollouts.dev/sandbox",
  slots: "hermes-rollouts.dev/slots",
  image: "hermes-rollouts.dev/image",
  /**
   * When the backend created the pod, to the millisecond and on the controller's clock: creationTimestamp has whole
   * seconds, so a pod made in the second a slot pool started would read as older than it (its slots held back one TTL).
   */
  createdAt: "hermes-rollouts.dev/created-at",
} as const;

export const SANDBOX_COMPONENT = "sandbox";

/** What the pod of one pool needs beyond the template: where its token lives and what owns it. */
export interface PodSettings {
  namespace: string;
  settings: KubernetesPoolSettings;
  /**
   * The hermes-rollouts image that brings the server into pods of images without it (`settings.serverImage`, else
   * the controller's own image); unused when `settings.serverCommand` says the image carries the CLI.
   */
  serverImage?: string;
  /** The pool's isolation, passed to the server (which refuses to start under bwrap where bwrap cannot run). */
  isolation: IsolationPolicy;
  /** The Secret key holding the pool's sandbox-server token: the pod reads it through secretKeyRef, never inline. */
  tokenSecret: { name: string; key: string };
  /** The SandboxPool, so the garbage collector deletes the pods of a deleted pool even without the controller. */
  owner?: { apiVersion: string; kind: string; name: string; uid: string };
}

/** The pool's name inside its namespace: the template's pool key is `namespace/name` in a cluster. */
export function poolName(poolKey: string): string {
  return poolKey.slice(poolKey.lastIndexOf("/") + 1);
}

export const poolSelector = (poolKey: string) => `${LABELS.pool}=${poolName(poolKey)},${LABELS.component}=${SANDBOX_COMPONENT}`;

const imageHash = (image: string) => createHash("sha256").update(image).digest("hex").slice(0, 12);

/**
 * Readiness is the server's own /health, asked with the token from the container's environment: a kubelet HTTP probe
 * cannot send a header from a Secret. bash's /dev/tcp keeps the probe to one cheap process (no node start per probe).
 */
const HEALTH_PROBE =
  `exec 3<>/dev/tcp/127.0.0.1/${SANDBOX_PORT} && ` +
  `printf 'GET /health HTTP/1.0\\r\\nAuthorization: Bearer %s\\r\\n\\r\\n' "$HERMES_SANDBOX_TOKEN" >&3 && ` +
  `head -n 1 <&3 | grep -q ' 200 '`;

export function sandboxPod(name: string, template: SandboxTemplate, pod: PodSettings, createdAt: Date): V1Pod {
  const { settings } = pod;
  const server = serverStart(pod, template);
  const quantities = { cpu: `${Math.max(1, Math.round(template.cpu * 1000))}m`, memory: `${template.memoryMiB}Mi` };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: pod.namespace,
      labels: {
        [LABELS.pool]: poolName(template.pool),
        [LABELS.templateHash]: template.templateHash,
        [LABELS.image]: imageHash(template.image),
        [LABELS.component]: SANDBOX_COMPONENT,
        "app.kubernetes.io/name": "hermes-rollouts",
      },
      annotations: {
        [ANNOTATIONS.sandbox]: name,
        [ANNOTATIONS.slots]: String(template.slots),
        [ANNOTATIONS.image]: template.image,
        [ANNOTATIONS.createdAt]: createdAt.toISOString(),
      },
      ...(pod.owner ? { ownerReferences: [{ ...pod.owner, controller: true, blockOwnerDeletion: true }] } : {}),
    },
    spec: {
      // A restarted server has lost its slots' processes: the pod fails instead, and the pool replaces it.
      restartPolicy: "Never",
      // The hard lifetime holds even when no controller is left to end the pod.
      ...(template.lifetimeSeconds > 0 ? { activeDeadlineSeconds: template.lifetimeSeconds } : {}),
      terminationGracePeriodSeconds: 5,
      enableServiceLinks: false,
      automountServiceAccountToken: settings.automountServiceAccountToken,
      ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
      ...(settings.runtimeClassName ? { runtimeClassName: settings.runtimeClassName } : {}),
      ...(settings.priorityClassName ? { priorityClassName: settings.priorityClassName } : {}),
      ...(settings.nodeSelector ? { nodeSelector: settings.nodeSelector } : {}),
      ...(settings.tolerations ? { tolerations: settings.tolerations } : {}),
      ...(settings.affinity ? { affinity: settings.affinity } : {}),
      ...(settings.imagePullSecrets ? { imagePullSecrets: settings.imagePullSecrets } : {}),
      ...(server.initContainers.length > 0
        ? { initContainers: server.initContainers.map((init) => ({ ...init, resources: { requests: quantities } })) }
        : {}),
      containers: [
        {
          name: "sandbox",
          image: template.image,
          ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
          command: server.command,
          args: ["sandbox-server", "--host", "0.0.0.0", "--port", String(SANDBOX_PORT), "--slots", String(template.slots)].concat([
            "--data-dir",
            DATA_DIR,
            "--isolation",
            pod.isolation.mode,
            "--network",
            pod.isolation.network,
            ...slotEnvArgs(template.env),
            ...slotLimitArgs(pod.isolation.slotLimits),
          ]),
          // A server that refuses to start (bwrap cannot run here) says why in its last log lines: the pod's status keeps them.
          terminationMessagePolicy: "FallbackToLogsOnError",
          env: [
            { name: "HERMES_SANDBOX_TOKEN", valueFrom: { secretKeyRef: { name: pod.tokenSecret.name, key: pod.tokenSecret.key } } },
            ...Object.entries(template.env ?? {}).map(([envName, value]) => ({ name: envName, value })),
          ],
          ports: [{ name: "http", containerPort: SANDBOX_PORT }],
          readinessProbe: { exec: { command: ["bash", "-c", HEALTH_PROBE] }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 2 },
          resources: { requests: quantities, limits: quantities },
          ...(settings.seccompProfile ? { securityContext: { seccompProfile: { type: settings.seccompProfile } } } : {}),
          volumeMounts: [{ name: "data", mountPath: DATA_DIR }, ...server.volumeMounts],
        },
      ],
      volumes: [{ name: "data", emptyDir: {} }, ...server.volumes],
    },
  };
}

/**
 * How the sandbox container starts the server. An image that carries this CLI says how (`serverCommand`); any other
 * image gets it from an initContainer running the hermes-rollouts image's `inject` into an emptyDir (the layout a Nomad
 * docker job's prestart task makes), and runs the copied node, linked against glibc. The init containers request the
 * sandbox's own resources (the pod's request is the larger of an init container's and the containers' sum, so the
 * copy reserves nothing more) and have no limits: writing some 13,000 files (286 MB) is mostly kernel time, took 9 s
 * under a one-CPU limit on the test cluster and 91 s under a small sandbox's 0.1, and its page cache would press a
 * small memory limit. The pod's QoS class is then Burstable.
 */
function serverStart(
  pod: PodSettings,
  template: SandboxTemplate,
): {
  command: string[];
  initContainers: V1Container[];
  volumeMounts: V1Container["volumeMounts"] & {};
  volumes: V1Volume[];
} {
  if (pod.settings.serverCommand) return { command: pod.settings.serverCommand, initContainers: [], volumeMounts: [], volumes: [] };
  if (pod.serverImage === undefined || pod.serverImage === "") {
    throw new SandboxError(
      "configuration",
      "spec.kubernetes.serverImage is required unless spec.kubernetes.serverCommand is set: the hermes-rollouts image that " +
        "brings the sandbox server (the controller defaults it to its own image)",
    );
  }
  return {
    command: injectedServerCommand(INJECTED_SERVER_DIR),
    initContainers: [
      {
        // First: the kubelet pulls an init container's image only when its turn comes, so a sandbox image that cannot
        // be pulled would otherwise surface only after the copy; and an image without bash fails here, by name.
        name: CHECK_IMAGE_STEP_NAME,
        image: template.image,
        ...(pod.settings.imagePullPolicy ? { imagePullPolicy: pod.settings.imagePullPolicy } : {}),
        command: ["bash", "-c", ":"],
      },
      {
        name: INJECT_STEP_NAME,
        image: pod.serverImage,
        args: injectArgs(INJECTED_SERVER_DIR),
        terminationMessagePolicy: "FallbackToLogsOnError",
        volumeMounts: [{ name: "server", mountPath: INJECTED_SERVER_DIR }],
      },
    ],
    // Read-only: nothing in the sandbox has a reason to write the server's copy.
    volumeMounts: [{ name: "server", mountPath: INJECTED_SERVER_DIR, readOnly: true }],
    volumes: [{ name: "server", emptyDir: {} }],
  };
}

/** Container waiting reasons that do not clear by waiting: the image or the container's config is wrong. */
const STUCK_WAITING: Record<string, SandboxStuckReason> = {
  ErrImagePull: "ImagePullFailed",
  ImagePullBackOff: "ImagePullFailed",
  InvalidImageName: "ImagePullFailed",
  ErrImageNeverPull: "ImagePullFailed",
  CreateContainerConfigError: "ContainerConfigError",
  CreateContainerError: "ContainerConfigError",
  RunContainerError: "ContainerConfigError",
};

/** A listed pod as the pool sees it: ready only when the kubelet's probe of /health passes. */
export function describePod(pod: V1Pod, poolKey: string): SandboxInfo {
  const name = pod.metadata?.annotations?.[ANNOTATIONS.sandbox] ?? pod.metadata?.name ?? "";
  const image = pod.metadata?.annotations?.[ANNOTATIONS.image];
  const base = {
    id: pod.metadata?.name ?? name,
    name,
    pool: poolKey,
    slots: Number(pod.metadata?.annotations?.[ANNOTATIONS.slots] ?? 0),
    templateHash: pod.metadata?.labels?.[LABELS.templateHash] ?? "",
    ...(image === undefined ? {} : { image }),
    createdAt: new Date(pod.metadata?.annotations?.[ANNOTATIONS.createdAt] ?? pod.metadata?.creationTimestamp ?? 0),
  };
  const state = podState(pod);
  return {
    ...base,
    phase: state.phase,
    ...(state.message === undefined ? {} : { message: state.message }),
    ...(state.stuck === undefined ? {} : { stuck: state.stuck }),
  };
}

function podState(pod: V1Pod): { phase: SandboxPhase; message?: string; stuck?: SandboxStuckReason } {
  const status = pod.status ?? {};
  if (pod.metadata?.deletionTimestamp) return { phase: "terminated", message: "pod is being deleted" };
  const container = status.containerStatuses?.find((c) => c.name === "sandbox");
  const inits = status.initContainerStatuses ?? [];
  if (status.phase === "Failed" || status.phase === "Succeeded") {
    // Evicted and DeadlineExceeded are the pod's reason; OOMKilled or Error the container's (or a failed init container's).
    const failedInit = inits.find((c) => c.state?.terminated?.exitCode);
    const ended = container?.state?.terminated ?? failedInit?.state?.terminated;
    const who = container?.state?.terminated === undefined && failedInit ? `container ${failedInit.name}` : "container";
    const why = [
      status.reason,
      status.message,
      ended ? `${who} ${ended.reason ?? "exited"} (exit ${ended.exitCode})` : undefined,
      ended?.message?.trim(),
    ];
    return { phase: "failed", message: `pod ${status.phase.toLowerCase()}: ${why.filter(Boolean).join(": ")}` };
  }
  const unscheduled = status.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unscheduled?.reason === "Unschedulable") {
    return { phase: "starting", stuck: "Unschedulable", message: `Unschedulable: ${unscheduled.message ?? ""}` };
  }
  // While an init container cannot start (its image unpullable), the sandbox container only waits in PodInitializing.
  const stuckInit = inits.find((c) => c.state?.waiting?.reason !== undefined && STUCK_WAITING[c.state.waiting.reason]);
  const waiting = stuckInit?.state?.waiting ?? container?.state?.waiting;
  const stuck = waiting?.reason === undefined ? undefined : STUCK_WAITING[waiting.reason];
  if (waiting?.reason !== undefined) {
    const message = `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`;
    return stuck === undefined ? { phase: "starting", message } : { phase: "starting", stuck, message };
  }
  if (container?.state?.terminated) return { phase: "failed", message: `container ${container.state.terminated.reason ?? "exited"}` };
  const ready = status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
  if (status.phase === "Running" && ready && status.podIP) return { phase: "ready" };
  return { phase: "starting", message: status.phase === "Running" ? "waiting for /health" : (status.phase ?? "Pending") };
}
