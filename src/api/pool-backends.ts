import { z } from "zod";
import { dnsSubdomain, secretKeyRef, secretRef } from "./common.ts";

/** The backend-specific blocks of a SandboxPool spec (spec.modal, spec.nomad, spec.kubernetes, spec.local). */
export const backendKind = z.enum(["local", "modal", "nomad", "kubernetes"]);

export const modalBlock = z
  .object({
    appName: z
      .string()
      .min(1)
      .max(64)
      .default("hermes-rollouts")
      .describe("Modal app that owns the pool's sandboxes (created if missing)."),
    environment: z.string().min(1).optional().describe("Modal environment; the workspace default when unset."),
    credentialsSecretRef: secretRef
      .optional()
      .describe("Secret holding MODAL_TOKEN_ID and MODAL_TOKEN_SECRET. Required against Modal itself; a mock accepts any token."),
    regions: z.array(z.string().min(1)).max(16).optional().describe("Regions Modal may place sandboxes in; any region when unset."),
    serverURL: z
      .string()
      .regex(/^https?:\/\//, "must start with http:// or https://")
      .optional()
      .describe(
        "Control-plane URL (MODAL_SERVER_URL); set it to a mock Modal server in CI (the chart's mockModal values make " +
          "the controller trust the mock's router CA). Defaults to Modal's API.",
      ),
  })
  .strict()
  .describe("Settings for backend: modal.");

/** The hermes-rollouts image that brings the sandbox server into a pool's image (Nomad docker, kubernetes). */
const serverImage = (description: string) => z.string().min(1).max(512).optional().describe(description);

export const nomadBlock = z
  .object({
    address: z
      .string()
      .regex(/^https?:\/\//, "must start with http:// or https://")
      .describe("Nomad HTTP API address (NOMAD_ADDR)."),
    namespace: z.string().min(1).default("default").describe("Nomad namespace for the pool's jobs."),
    region: z.string().min(1).optional().describe("Nomad region; the agent's own when unset."),
    datacenters: z.array(z.string().min(1)).min(1).max(32).default(["dc1"]).describe("Datacenters the jobs may run in."),
    driver: z
      .enum(["docker", "raw_exec"], {
        // Nomad's exec driver runs the task in a chroot of the client's chroot_env (by default /bin, /etc, /lib*,
        // /sbin, /usr: client/config/config.go DefaultChrootEnv), which holds neither this CLI nor its checkout.
        error: "must be docker or raw_exec (exec is not supported: its chroot leaves out hermes-rollouts, so the server cannot start)",
      })
      .default("docker")
      .describe(
        "Task driver that runs the sandbox server: docker (any glibc image; the server is copied in by a prestart task " +
          "running serverImage) or raw_exec (hermes-rollouts on the node).",
      ),
    serverImage: serverImage(
      "Driver docker: the hermes-rollouts image whose prestart task copies node and the sandbox server into each " +
        "allocation, for the pool's image to run. The controller's own image when unset.",
    ),
    tokenSecretRef: secretKeyRef.optional().describe("Secret key holding the ACL token (NOMAD_TOKEN)."),
    tlsSecretRef: secretRef.optional().describe("Secret with ca.crt, and tls.crt and tls.key for mutual TLS."),
  })
  .strict()
  .describe("Settings for backend: nomad.");

/** A field kept as the apiserver's own Pod schema has it (too big to restate); the apiserver validates it on pod create. */
const podField = (description: string) =>
  z.record(z.string(), z.unknown()).meta({ "x-kubernetes-preserve-unknown-fields": true }).describe(description);

export const kubernetesBlock = z
  .object({
    serverImage: serverImage(
      "The hermes-rollouts image whose initContainer copies node and the sandbox server into each pod (emptyDir /hermes), " +
        "for the pool's image (any glibc image with bash) to run. The controller's own image when unset.",
    ),
    serverCommand: z
      .array(z.string().min(1))
      .min(1)
      .max(8)
      .optional()
      .describe(
        "For images that carry this project's CLI: how to start it (e.g. [node, /app/bin/hermes-rollouts.js] for the project's " +
          "image and images built FROM it); the pod then runs `<serverCommand> sandbox-server` with no initContainer.",
      ),
    imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional().describe("The sandbox container's imagePullPolicy."),
    runtimeClassName: dnsSubdomain.optional().describe("RuntimeClass of sandbox pods (gVisor, Kata); the node's default when unset."),
    nodeSelector: z.record(z.string(), z.string()).optional().describe("Node labels a sandbox pod's node must have."),
    tolerations: z
      .array(
        z
          .object({
            key: z.string().optional().describe("Taint key; empty with operator Exists matches every taint."),
            operator: z.enum(["Exists", "Equal"]).optional().describe("Exists or Equal (the default)."),
            value: z.string().optional().describe("Taint value for operator Equal."),
            effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional().describe("Taint effect; every effect when unset."),
            tolerationSeconds: z.int().min(0).optional().describe("How long a NoExecute taint is tolerated."),
          })
          .strict(),
      )
      .max(32)
      .optional()
      .describe("Tolerations of sandbox pods, as in a Pod spec."),
    affinity: podField("Affinity of sandbox pods, as in a Pod spec (nodeAffinity, podAffinity, podAntiAffinity).").optional(),
    imagePullSecrets: z.array(secretRef).max(16).optional().describe("Secrets the kubelet pulls the sandbox image with."),
    serviceAccountName: dnsSubdomain.optional().describe("ServiceAccount of sandbox pods; the namespace's default when unset."),
    automountServiceAccountToken: z
      .boolean()
      .default(false)
      .describe("Mount the ServiceAccount's API token into sandbox pods. Off: a model's commands run in them."),
    priorityClassName: dnsSubdomain.optional().describe("PriorityClass of sandbox pods."),
    seccompProfile: z
      .enum(["Unconfined", "RuntimeDefault"])
      .optional()
      .describe(
        "Seccomp profile of the sandbox container. Bubblewrap needs user namespaces, which RuntimeDefault blocks on most " +
          "runtimes; leave it unset (the node's default: Unconfined on Kubernetes < 1.27 without SeccompDefault) or set " +
          "Unconfined to isolate slots, or rely on runtimeClassName. The Isolated condition says what the probe found.",
      ),
  })
  .strict()
  .describe("Settings for backend: kubernetes (each sandbox is a pod in the pool's namespace).");

export const localBlock = z
  .object({
    rootDir: z.string().min(1).optional().describe("Directory that holds the sandboxes; a temporary directory when unset."),
  })
  .strict()
  .describe("Settings for backend: local (sandboxes are directories on the controller's host).");
