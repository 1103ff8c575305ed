import { createHash } from "node:crypto";
import type { IsolationPolicy, SandboxTemplate } from "../types.ts";

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
  Resources: { CPU: number; MemoryMB: number };
  KillTimeout: number;
}

export type NomadDriver = "raw_exec" | "exec" | "docker";

/** Meta keys on every sandbox job; identifiers only, so go-bexpr filters can name them (`Meta.hermes_pool`). */
export const META = {
  managedBy: "managed_by",
  pool: "hermes_pool",
  sandbox: "hermes_sandbox",
  templateHash: "hermes_template_hash",
  slots: "hermes_slots",
  lifetimeSeconds: "hermes_lifetime_seconds",
} as const;
export const MANAGED_BY = "hermes-rollouts";
export const TASK_NAME = "sandbox-server";
export const GROUP_NAME = "sandbox";
export const PORT_LABEL = "http";
/** Port the server listens on inside a docker container (mapped to the dynamic host port). */
export const CONTAINER_PORT = 8080;

const SECOND_NS = 1_000_000_000;

export interface SandboxJobSettings {
  driver: NomadDriver;
  datacenters: string[];
  /** Token every sandbox server requires (the pool's shared token). */
  sandboxToken?: string;
  /** raw_exec/exec: the program and leading args that start our CLI, e.g. [node, <repo>/bin/hermes-rollouts.js]. */
  launcher: string[];
  /** The pool's setting; bwrap with slot commands in a network namespace of their own by default. */
  isolation?: IsolationPolicy;
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
  return poolJobPrefix(pool) + name;
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
  ];
  // The token travels in the environment, not argv, so `ps` on the node does not show it.
  const env: Record<string, string> = { ...template.env };
  if (settings.sandboxToken !== undefined) env.HERMES_SANDBOX_TOKEN = settings.sandboxToken;
  const [program, ...launcherArgs] = settings.launcher;
  const config: Record<string, unknown> =
    settings.driver === "docker" ? dockerConfig(template.image, serverArgs) : { command: program, args: [...launcherArgs, ...serverArgs] };
  return {
    ID: sandboxJobId(template.pool, name),
    Name: sandboxJobId(template.pool, name),
    Type: "service",
    Datacenters: settings.datacenters,
    Meta: {
      [META.managedBy]: MANAGED_BY,
      [META.pool]: template.pool,
      [META.sandbox]: name,
      [META.templateHash]: template.templateHash,
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
        Tasks: [
          {
            Name: TASK_NAME,
            Driver: settings.driver,
            Config: config,
            Env: env,
            Resources: { CPU: Math.max(100, Math.round(template.cpu * 1000)), MemoryMB: Math.max(64, template.memoryMiB) },
            KillTimeout: 5 * SECOND_NS,
          },
        ],
      },
    ],
  };
}

/**
 * Docker task config: args only, no `command`. Nomad's docker driver (drivers/docker/driver.go,
 * createContainerConfig) sets `Cmd = [command, ...args]` when `command` is set, else `Cmd = args`, and passes
 * `Entrypoint` only when the job sets one; so the image's ENTRYPOINT (`node /app/bin/hermes-rollouts.js` in
 * our Dockerfile) stays and runs `sandbox-server ...`. `force_pull: false` is the default, stated so nobody
 * reads it as a pull policy: the driver's createImage skips its local-image check for the tag `latest`
 * (parseDockerImage turns an untagged image into `latest`), so such images are pulled on every start.
 */
function dockerConfig(image: string, serverArgs: string[]): Record<string, unknown> {
  return { image, ports: [PORT_LABEL], args: serverArgs, force_pull: false };
}

/** True when Nomad's docker driver pulls the image on every start (tag `latest`, or no tag and no digest). */
export function isAlwaysPulled(image: string): boolean {
  if (image.includes("@")) return false;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  return !lastSegment.includes(":") || lastSegment.endsWith(":latest");
}
