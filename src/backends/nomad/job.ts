import { createHash } from "node:crypto";
import { SandboxError } from "../../base/errors.ts";
import { INJECT_STEP_NAME, injectArgs, injectedServerCommand } from "../sandbox-server/inject.ts";
import { slotEnvArgs } from "../sandbox-server/protocol.ts";
import type { IsolationPolicy, SandboxTemplate } from "../types.ts";
import { slotLimitArgs } from "../slot-limits.ts";

/** Nomad job JSON as we send it (PascalCase; durations in nanoseconds). Only the fields we set are typed. */
export interface NomadJob {
  ID: string;
  Name: string;
  Namespace?: string;
  Type: "service";
  Datacenters: string[];
  Meta: Record<string, string>;
  TaskGroups: NomadTaskGroup[];
}

export interface NomadTaskGroup {
  Name: string;
  Count: number;
  Update: { MaxParallel: number };
  RestartPolicy: { Attempts: number; Interval: number; Delay: number; Mode: "fail" | "delay" };
  ReschedulePolicy: {
    Attempts: number;
    Interval: number;
    Unlimited: boolean;
    Delay: number;
    DelayFunction: "constant" | "exponential" | "fibonacci";
  };
  Networks: { Mode: "host"; DynamicPorts: { Label: string; To?: number }[] }[];
  Tasks: NomadTask[];
}

export interface NomadTask {
  Name: string;
  Driver: NomadDriver;
  Config: Record<string, unknown>;
  Env: Record<string, string>;
  Templates: NomadTemplate[];
  Resources: { CPU: number; MemoryMB: number };
  KillTimeout: number;
  /** api/tasks.go TaskLifecycle; unset on the main task. */
  Lifecycle?: { Hook: "prestart"; Sidecar: false };
}

/**
 * No `exec`: its chroot holds only the client's chroot_env (by default /bin, /etc, /lib*, /sbin, /usr; hashicorp/nomad
 * client/config/config.go DefaultChrootEnv), so neither this CLI nor its checkout is there.
 */
export type NomadDriver = "raw_exec" | "docker";

/** api/tasks.go Template (the fields we set); rendered by the client before the task starts. */
export interface NomadTemplate {
  EmbeddedTmpl: string;
  DestPath: string;
  ChangeMode: "noop";
  /** Octal file mode; the file is the Nomad client's (root's) and a docker image may run as another user. */
  Perms: string;
}

/** Meta keys on every sandbox job; identifiers only, so go-bexpr filters can name them (`Meta.hermes_pool`). */
export const META = {
  managedBy: "managed_by",
  pool: "hermes_pool",
  sandbox: "hermes_sandbox",
  templateHash: "hermes_template_hash",
  image: "hermes_image",
  slots: "hermes_slots",
  lifetimeSeconds: "hermes_lifetime_seconds",
} as const;
export const MANAGED_BY = "hermes-rollouts";
export const TASK_NAME = "sandbox-server";
export const GROUP_NAME = "sandbox";
export const PORT_LABEL = "http";
/** Port the server listens on inside a docker container (mapped to the dynamic host port). */
export const CONTAINER_PORT = 8080;
/**
 * Where the inject task puts the server, as both containers see it: the docker driver mounts the shared alloc dir
 * at /alloc (client/allocdir/fs_unix.go SharedAllocContainerPath). Under alloc/data, which Nomad makes 0777
 * (alloc_dir.go Build, SharedAllocDirs): alloc/ itself is 0755 and the hermes image runs as a non-root user.
 */
export const INJECTED_SERVER_DIR = "/alloc/data/hermes-server";
/** Item of the sandbox's Nomad Variable that holds the server token. */
export const TOKEN_ITEM = "sandbox_token";
/** The file the template renders the token to, in the task's secrets dir (`DestPath` is relative to the task dir). */
const TOKEN_FILE = "sandbox-token";

const SECOND_NS = 1_000_000_000;

export interface SandboxJobSettings {
  driver: NomadDriver;
  datacenters: string[];
  /**
   * Whether the sandbox's Variable (`sandboxVariablePath`) holds the server token: the task then renders it to a
   * file and the server reads it from there, so the token is never in the submitted job.
   */
  tokenVariable?: boolean;
  /** raw_exec: the program and leading args that start our CLI, e.g. [node, <repo>/bin/hermes-rollouts.js]. */
  launcher: string[];
  /** The pool's setting; bwrap with slot commands in a network namespace of their own by default. */
  isolation?: IsolationPolicy;
  /** docker: a hermes-rollouts image; its prestart task copies the server into the allocation (`inject`). */
  serverImage?: string;
}

/** Job IDs are `hr-<pool slug>-<pool hash>-<sandbox>`: readable, unique per pool, and a prefix lists a pool. */
export function poolJobPrefix(pool: string): string {
  const slug = pool
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 40);
  const hash = createHash("sha256").update(pool).digest("hex").slice(0, 8);
  return `hr-${slug}-${hash}-`;
}

export function sandboxJobId(pool: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
    throw new Error(`sandbox name must be 1-63 characters [A-Za-z0-9._-]: ${JSON.stringify(name)}`);
  }
  // A Variable path has no ".", so a dot (Kubernetes pool names have them) becomes "~", which names never contain.
  return poolJobPrefix(pool) + name.replaceAll(".", "~");
}

/** Pure: the one-sandbox job for a pool's template (Count 1, dynamic `http` port, no deployments). */
export function buildSandboxJob(name: string, template: SandboxTemplate, settings: SandboxJobSettings): NomadJob {
  const isolation = settings.isolation ?? { mode: "bwrap", network: "none" };
  const serverArgs = [
    "sandbox-server",
    "--port",
    settings.driver === "docker" ? String(CONTAINER_PORT) : "${NOMAD_PORT_http}",
    "--host",
    settings.driver === "docker" ? "0.0.0.0" : "${NOMAD_IP_http}",
    "--slots",
    String(template.slots),
    "--data-dir",
    "${NOMAD_ALLOC_DIR}/data",
    "--isolation",
    isolation.mode,
    "--network",
    isolation.network,
    ...slotEnvArgs(template.env),
    ...slotLimitArgs(isolation.slotLimits),
  ];
  const jobId = sandboxJobId(template.pool, name);
  if (settings.tokenVariable === true) serverArgs.push("--token-file", `\${NOMAD_SECRETS_DIR}/${TOKEN_FILE}`);
  const [program, ...launcherArgs] = settings.launcher;
  const config: Record<string, unknown> =
    settings.driver === "docker" ? dockerConfig(template.image, serverArgs) : { command: program, args: [...launcherArgs, ...serverArgs] };
  const resources = { CPU: Math.max(100, Math.round(template.cpu * 1000)), MemoryMB: Math.max(64, template.memoryMiB) };
  const serverTask: NomadTask = {
    Name: TASK_NAME,
    Driver: settings.driver,
    Config: config,
    Env: { ...template.env },
    Templates: settings.tokenVariable === true ? [tokenTemplate(jobId)] : [],
    Resources: resources,
    KillTimeout: 5 * SECOND_NS,
  };
  const tasks = settings.driver === "docker" ? [injectTask(requireServerImage(settings)), serverTask] : [serverTask];
  return {
    ID: jobId,
    Name: jobId,
    Type: "service",
    Datacenters: settings.datacenters,
    Meta: {
      [META.managedBy]: MANAGED_BY,
      [META.pool]: template.pool,
      [META.sandbox]: name,
      [META.templateHash]: template.templateHash,
      [META.image]: template.image,
      [META.slots]: String(template.slots),
      [META.lifetimeSeconds]: String(template.lifetimeSeconds),
    },
    TaskGroups: [
      {
        Name: GROUP_NAME,
        Count: 1,
        // MaxParallel 0 turns deployments off: nothing is ever "blocked due to active deployment".
        Update: { MaxParallel: 0 },
        // A crashed server loses its slots' state anyway; one quick restart, then a fresh allocation.
        RestartPolicy: { Attempts: 1, Interval: 300 * SECOND_NS, Delay: 1 * SECOND_NS, Mode: "fail" },
        // Bounded (Nomad's own service default is unlimited): a sandbox that keeps failing is reported failed
        // (the job goes dead) instead of being rescheduled forever. structs.go ReschedulePolicy.Validate: with
        // Unlimited false, Interval >= 15 s and Attempts x Delay (constant) must fit in the Interval.
        ReschedulePolicy: { Attempts: 3, Interval: 600 * SECOND_NS, Unlimited: false, Delay: 5 * SECOND_NS, DelayFunction: "constant" },
        Networks: [
          {
            Mode: "host",
            DynamicPorts: [settings.driver === "docker" ? { Label: PORT_LABEL, To: CONTAINER_PORT } : { Label: PORT_LABEL }],
          },
        ],
        Tasks: tasks,
      },
    ],
  };
}

/**
 * The sandbox's Nomad Variable: `nomad/jobs/<job ID>`, which the task's workload identity may read without any
 * ACL policy (hashicorp/nomad acl/acl.go, matchingVariablesCapabilitySet). Paths are `^[a-zA-Z0-9-_~/]{1,128}$`
 * (nomad/structs/variables.go validVariablePath); sandboxJobId keeps job IDs within that.
 */
export function sandboxVariablePath(jobId: string): string {
  return `nomad/jobs/${jobId}`;
}

/**
 * Renders the token to `secrets/sandbox-token` before the task starts (client/allocrunner/taskrunner/template).
 * `noop` on change: a running server keeps its token, and terminate deletes the variable after the job.
 */
function tokenTemplate(jobId: string): NomadTemplate {
  return {
    EmbeddedTmpl: `{{ with nomadVar "${sandboxVariablePath(jobId)}" }}{{ .${TOKEN_ITEM} }}{{ end }}`,
    DestPath: `secrets/${TOKEN_FILE}`,
    ChangeMode: "noop",
    Perms: "0644",
  };
}

/**
 * Docker task config. The pool's image is only the environment the slots' commands run in: it need not hold node
 * or this CLI. The server comes from `INJECTED_SERVER_DIR`, which the prestart task filled, so `entrypoint` is the
 * copied node and script and `args` are `sandbox-server ...`: the docker driver (drivers/docker/driver.go,
 * createContainerConfig) passes `Entrypoint` as given and `Cmd = args` (no `command`), replacing the image's own
 * ENTRYPOINT and CMD. The copied node is linked against glibc (and libstdc++), so images without them (musl:
 * alpine; scratch, distroless/static) cannot run it. `force_pull: false` is the default, stated so nobody reads it
 * as a pull policy: createImage skips its local-image check for the tag `latest` (parseDockerImage turns an
 * untagged image into `latest`), so such images are pulled on every start.
 */
function dockerConfig(image: string, serverArgs: string[]): Record<string, unknown> {
  return { image, entrypoint: injectedServerCommand(INJECTED_SERVER_DIR), ports: [PORT_LABEL], args: serverArgs, force_pull: false };
}

/**
 * Runs before the server task and exits (prestart, not a sidecar: client/allocrunner/tasklifecycle/coordinator.go
 * starts the main tasks once such tasks have finished successfully; if one fails, the allocation fails and the
 * server task never starts). Its image's entrypoint is this CLI, whose `inject` copies node and the app.
 */
function injectTask(serverImage: string): NomadTask {
  return {
    Name: INJECT_STEP_NAME,
    Driver: "docker",
    Config: { image: serverImage, args: injectArgs(INJECTED_SERVER_DIR), force_pull: false },
    Env: {},
    Templates: [],
    // Node copying files. A finished prestart task's resources do not add to the main tasks' (structs.go
    // AllocatedResources.Comparable takes the larger of the prestart and main sets).
    Resources: { CPU: 100, MemoryMB: 256 },
    KillTimeout: 5 * SECOND_NS,
    Lifecycle: { Hook: "prestart", Sidecar: false },
  };
}

function requireServerImage(settings: SandboxJobSettings): string {
  if (settings.serverImage === undefined || settings.serverImage === "") {
    throw new SandboxError(
      "configuration",
      "spec.nomad.serverImage is required for driver docker: the hermes-rollouts image that brings the sandbox server " +
        "(the controller defaults it to its own image, `run` to $HERMES_IMAGE)",
    );
  }
  return settings.serverImage;
}

/** True when Nomad's docker driver pulls the image on every start (tag `latest`, or no tag and no digest). */
export function isAlwaysPulled(image: string): boolean {
  if (image.includes("@")) return false;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  return !lastSegment.includes(":") || lastSegment.endsWith(":latest");
}
