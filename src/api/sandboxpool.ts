import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { conditions, quantity } from "./common.ts";
import { backendKind, kubernetesBlock, localBlock, modalBlock, nomadBlock } from "./pool-backends.ts";
import { has, withRules, type Rule, type TransitionRule } from "./rules.ts";

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
      .describe(
        "Size of one slot's workspace (a sparse, loop-mounted filesystem image per slot; a full one gives ENOSPC). " +
          "Default: not capped (the workspace shares the sandbox's disk); each cap costs a loop device and a mount per slot.",
      ),
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
  minSandboxesPerImage: number;
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
    rule: "self.minSandboxesPerImage <= self.maxSandboxes",
    message: "minSandboxesPerImage must not exceed maxSandboxes",
    path: ["minSandboxesPerImage"],
    check: (s) => s.minSandboxesPerImage <= s.maxSandboxes,
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
      maxSandboxes: z.int().min(1).max(1000).default(10).describe("Upper bound on sandboxes, whatever the demand and over all images."),
      minSandboxesPerImage: z
        .int()
        .min(0)
        .max(1000)
        .default(0)
        .describe(
          "Sandboxes kept warm for each image an item asked for in the last 10 minutes (spec.environment.image of a " +
            "RolloutJob), within maxSandboxes. When another image waits and the pool is at maxSandboxes, idle sandboxes " +
            "of the least recently used images go first.",
        ),
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
      slotWorkdir: z
        .string()
        // Absolute, not `/`, no `.` or `..` component (RE2: no lookahead, so the components are spelled out).
        .regex(/^(\/([^./][^/]*|\.[^./][^/]*|\.\.[^/]+))+$/, "slotWorkdir: an absolute path other than /, without . or ..")
        .max(256)
        .optional()
        .describe(
          "Where each slot's workspace is mounted under isolation bwrap (its cwd and HERMES_WORKSPACE), e.g. /testbed " +
            "for SWE-smith's images. local: an image named with a transport (oci:, oci-archive:, docker-archive:) is " +
            "every slot's read-only root, its workspace here or else at the image's WorkingDir; other names are the " +
            "host's system dirs, with the workspace here when set. modal: set, slots see the container's root (the " +
            "image) read-only with their workspace here; unset, only its system dirs and /workspace. nomad, " +
            "kubernetes: not read yet (/workspace).",
        ),
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
        images: z.int().min(0).optional().describe("Distinct images among the ready and starting sandboxes."),
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
    images: z
      .array(
        z
          .object({
            image: z.string().describe("The image (spec.image, or an item's spec.environment.image)."),
            ready: z.int().min(0).describe("Ready sandboxes of this image."),
            starting: z.int().min(0).describe("Sandboxes of this image being created or not yet healthy."),
            leased: z.int().min(0).describe("Slots leased on this image's sandboxes."),
          })
          .strict(),
      )
      .max(10)
      .optional()
      .describe("Sandboxes per image: the 10 images with the most sandboxes (status.sandboxes.images counts them all)."),
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
