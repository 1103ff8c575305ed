import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { conditions, dnsSubdomain, quantity, secretKeyRef, secretRef } from "./common.ts";
import { has, withRules, type Rule, type TransitionRule } from "./rules.ts";

export const backendKind = z.enum(["local", "modal", "nomad", "kubernetes"]);

const modalBlock = z
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

const nomadBlock = z
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

const localBlock = z
  .object({
    rootDir: z.string().min(1).optional().describe("Directory that holds the sandboxes; a temporary directory when unset."),
  })
  .strict()
  .describe("Settings for backend: local (sandboxes are directories on the controller's host).");

const slotLimitsBlock = z
  .object({
    memory: quantity
      .optional()
      .describe("Memory of one slot's commands (their cgroup's limit; /tmp counts). Default: resources.memory / slotsPerSandbox."),
    cpu: quantity.optional().describe("CPU of one slot's commands, in cores (their cgroup's quota). Default: resources.cpu."),
    pids: z
      .int()
      .min(16)
      .max(1_048_576)
      .optional()
      .describe("Processes and threads of one slot's commands (their cgroup's pids.max). Default: 512."),
    workspace: quantity
      .optional()
      .describe("Size of one slot's workspace (a sparse, loop-mounted filesystem image; a full one gives ENOSPC). Default: 10Gi."),
  })
  .strict()
  .describe(
    "Per-slot limits, enforced where the sandbox can: memory, CPU and processes through a cgroup per slot (a delegated " +
      "cgroup v2, or cgroup v1 as root), the workspace size through a loop mount (root and /dev/loop-control). The " +
      "Isolated condition says which hold; a limit the sandbox cannot set does not make the pool not Ready.",
  );

const isolationBlock = z
  .object({
    mode: z
      .enum(["bwrap", "none"])
      .default("bwrap")
      .describe(
        "bwrap confines every slot command (own mounts, pid and network namespaces, no capabilities, not root); a " +
          "sandbox where it cannot run makes the pool not Ready. none runs slot commands as plain processes: nothing " +
          "stops a model from reading other slots or the host, so only ask for it on trusted workloads.",
      ),
    network: z
      .enum(["none", "egress", "host"])
      .default("none")
      .describe(
        "Network of the model's slot commands under bwrap: none is a namespace of their own (loopback only; the " +
          "host's 127.0.0.1 and the sandbox server are out of reach); egress adds a route out through slirp4netns " +
          "(any address the sandbox reaches, except its host's 127.0.0.1 and the slot's sandbox server there; not on " +
          "modal); host is the sandbox's own network. The environment's fetch and install steps, which run before " +
          "the agent, always get the sandbox's network.",
      ),
    limits: slotLimitsBlock.optional(),
  })
  .strict()
  .describe("How slots are isolated from each other and from the host. Immutable.");

const resources = z
  .object({
    cpu: quantity.default("1").describe("CPU per sandbox, as a quantity (cores)."),
    memory: quantity.default("2Gi").describe("Memory per sandbox, as a quantity."),
  })
  .strict()
  .describe("Resources of one sandbox (shared by its slots).");

type PoolSpecShape = {
  backend: "local" | "modal" | "nomad" | "kubernetes";
  isolation: { mode: string; network: string; limits?: unknown };
  minSandboxes: number;
  maxSandboxes: number;
  modal?: unknown;
  nomad?: unknown;
  local?: unknown;
  kubernetes?: unknown;
  idleTimeoutSeconds: number;
  sandboxLifetimeSeconds: number;
};

export const sandboxPoolRules: Rule<PoolSpecShape>[] = [
  {
    rule: "self.minSandboxes <= self.maxSandboxes",
    message: "minSandboxes must not exceed maxSandboxes",
    path: ["minSandboxes"],
    check: (s) => s.minSandboxes <= s.maxSandboxes,
  },
  {
    rule: "(self.backend == 'modal') == has(self.modal)",
    message: "spec.modal must be set exactly when backend is modal",
    path: ["modal"],
    check: (s) => (s.backend === "modal") === has(s, "modal"),
  },
  {
    rule: "(self.backend == 'nomad') == has(self.nomad)",
    message: "spec.nomad must be set exactly when backend is nomad",
    path: ["nomad"],
    check: (s) => (s.backend === "nomad") === has(s, "nomad"),
  },
  {
    rule: "self.backend == 'local' || !has(self.local)",
    message: "spec.local may only be set when backend is local",
    path: ["local"],
    check: (s) => s.backend === "local" || !has(s, "local"),
  },
  {
    rule: "self.backend == 'kubernetes' || !has(self.kubernetes)",
    message: "spec.kubernetes may only be set when backend is kubernetes",
    path: ["kubernetes"],
    check: (s) => s.backend === "kubernetes" || !has(s, "kubernetes"),
  },
  {
    rule: "self.isolation.network != 'egress' || self.backend != 'modal'",
    message: "isolation.network egress is not available on backend modal (its exec cannot start the slot's network)",
    path: ["isolation", "network"],
    check: (s) => s.isolation.network !== "egress" || s.backend !== "modal",
  },
  {
    rule: "self.idleTimeoutSeconds <= self.sandboxLifetimeSeconds",
    message: "idleTimeoutSeconds must not exceed sandboxLifetimeSeconds",
    path: ["idleTimeoutSeconds"],
    check: (s) => s.idleTimeoutSeconds <= s.sandboxLifetimeSeconds,
  },
];

export const sandboxPoolTransitionRules: TransitionRule<PoolSpecShape>[] = [
  {
    rule: "self.backend == oldSelf.backend",
    message: "backend is immutable: create a new pool to change it",
    check: (s, old) => s.backend === old.backend,
  },
  {
    rule: "self.isolation == oldSelf.isolation",
    message: "isolation is immutable: create a new pool to change it",
    check: (s, old) => isDeepStrictEqual(s.isolation, old.isolation),
  },
];

export const sandboxPoolSpec = withRules(
  z
    .object({
      backend: backendKind.describe(
        "Where sandboxes run: local (directories and processes), modal, nomad or kubernetes (pods). Immutable.",
      ),
      minSandboxes: z.int().min(0).max(1000).default(1).describe("Sandboxes kept warm even with no demand."),
      maxSandboxes: z.int().min(1).max(1000).default(10).describe("Upper bound on sandboxes, whatever the demand."),
      slotsPerSandbox: z
        .int()
        .min(1)
        .max(256)
        .default(10)
        .describe("Isolated workspaces (slots) per sandbox; one trajectory leases one slot."),
      image: z
        .string()
        .min(1)
        .max(512)
        .default("python:3.11-slim")
        .describe("Container image of each sandbox (modal, nomad docker driver, kubernetes)."),
      resources: resources.default({ cpu: "1", memory: "2Gi" }),
      isolation: isolationBlock.default({ mode: "bwrap", network: "none" }),
      sandboxLifetimeSeconds: z
        .int()
        .min(60)
        .max(86400)
        .default(3600)
        .describe(
          "Hard lifetime of a sandbox. In its last quarter (at most 15 minutes) a replacement starts and it gets new " +
            "leases only when no other slot is free; it goes once its slots are given back.",
        ),
      idleTimeoutSeconds: z
        .int()
        .min(10)
        .max(86400)
        .default(600)
        .describe(
          "The backend ends a sandbox nobody touched for this long (Modal and local; Nomad has none): a safety net for " +
            "sandboxes a stopped controller left behind. A live pool probes its sandboxes three times per timeout, so they " +
            "stay warm, leased or not.",
        ),
      leaseTTLSeconds: z
        .int()
        .min(5)
        .max(3600)
        .default(60)
        .describe("A slot lease not renewed for this long expires; the slot is reset and returned."),
      acquireTimeoutSeconds: z
        .int()
        .min(1)
        .max(3600)
        .default(120)
        .describe("How long a runner waits for a free slot before the attempt fails."),
      maxConcurrentCreates: z
        .int()
        .min(1)
        .max(100)
        .default(5)
        .describe("Sandbox creations in flight at once (backends rate-limit creates)."),
      modal: modalBlock.optional(),
      nomad: nomadBlock.optional(),
      local: localBlock.optional(),
      kubernetes: kubernetesBlock.optional(),
    })
    .strict()
    .describe("Desired state of a pool of warm sandboxes."),
  sandboxPoolRules,
  sandboxPoolTransitionRules,
);

export const sandboxPoolStatus = z
  .object({
    observedGeneration: z.int().min(0).optional().describe("The .metadata.generation this status reflects."),
    conditions: conditions.optional(),
    sandboxes: z
      .object({
        ready: z.int().min(0).default(0).describe("Sandboxes answering health checks."),
        starting: z.int().min(0).default(0).describe("Sandboxes being created or not yet healthy."),
        failed: z.int().min(0).default(0).describe("Sandboxes that failed and await replacement."),
      })
      .strict()
      .optional()
      .describe("Sandbox counts by phase."),
    slots: z
      .object({
        total: z.int().min(0).default(0).describe("Slots on ready sandboxes."),
        leased: z.int().min(0).default(0).describe("Slots held by a runner."),
        free: z.int().min(0).default(0).describe("Slots ready to lease."),
        quarantined: z.int().min(0).default(0).describe("Slots whose reset failed; their sandbox is being replaced."),
      })
      .strict()
      .optional()
      .describe("Slot counts."),
    isolation: z
      .enum(["bwrap", "none"])
      .optional()
      .describe("How slots are isolated, as the last probed sandbox reports it (the Isolated condition says why)."),
    templateHash: z.string().optional().describe("Hash of the sandbox template the pool rolls sandboxes towards."),
  })
  .strict()
  .describe("Observed state of the pool.");

export type KubernetesPoolSettings = z.infer<typeof kubernetesBlock>;
export type SandboxPoolSpec = z.infer<typeof sandboxPoolSpec>;
export type SandboxPoolSpecInput = z.input<typeof sandboxPoolSpec>;
export type SandboxPoolStatus = z.infer<typeof sandboxPoolStatus>;
