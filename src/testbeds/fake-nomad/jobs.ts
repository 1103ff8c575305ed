/**
 * Job register as hashicorp/nomad does it (at aa026cc): nomad/job_endpoint.go Register, the restart and reschedule
 * defaults and validation of nomad/structs/structs.go, and nomad/job_endpoint_validators.go (an unknown namespace is
 * a 500). Differences kept on purpose are listed in docs/nomad-fake.md.
 */
import { isDeepStrictEqual } from "node:util";
import type { FakeNomadState, Json } from "./state.ts";
import { groupValidationErrors, lifecycleHook } from "./validate.ts";

/** A register the fake refuses, with Nomad's status code and text. */
export class NomadHttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const NS = 1_000_000_000;
const serviceRestartDefault = { Attempts: 2, Interval: 1800 * NS, Delay: 15 * NS, Mode: "fail" };
const serviceRescheduleDefault = {
  Attempts: 0,
  Interval: 0,
  Delay: 30 * NS,
  DelayFunction: "exponential",
  MaxDelay: 3600 * NS,
  Unlimited: true,
};

/** Validates and canonicalises a job the way Nomad's register endpoint does for the fields we use. */
export function canonicalizeJob(input: unknown, namespace: string, state: FakeNomadState): Json {
  if (typeof input !== "object" || input === null) throw new NomadHttpError(400, "Job must be specified");
  const job = structuredClone(input) as Json;
  if (typeof job.ID !== "string" || job.ID === "") throw new NomadHttpError(500, "1 error occurred:\n\t* Missing job ID\n\n");
  if (/\s/.test(job.ID)) throw new NomadHttpError(500, "1 error occurred:\n\t* Job ID contains a space\n\n");
  job.Namespace = typeof job.Namespace === "string" && job.Namespace !== "" ? job.Namespace : namespace;
  // nomad/job_endpoint_validators.go: an RPC error, which the HTTP layer answers with 500.
  if (!state.namespaces.has(String(job.Namespace)))
    throw new NomadHttpError(500, `job "${job.ID}" is in nonexistent namespace "${String(job.Namespace)}"`);
  job.Name ??= job.ID;
  job.Type ??= "service";
  job.Priority ??= 50;
  job.Region ??= "global";
  if (!Array.isArray(job.Datacenters) || job.Datacenters.length === 0) job.Datacenters = ["*"];
  job.Meta ??= null;
  const groups = job.TaskGroups;
  if (!Array.isArray(groups) || groups.length === 0) throw new NomadHttpError(500, "1 error occurred:\n\t* Missing job task groups\n\n");
  for (const group of groups as Json[]) {
    if (typeof group.Name !== "string") throw new NomadHttpError(500, "1 error occurred:\n\t* Missing task group name\n\n");
    group.Count ??= 1;
    group.RestartPolicy = { ...serviceRestartDefault, ...(group.RestartPolicy as Json | undefined) };
    group.ReschedulePolicy = { ...serviceRescheduleDefault, ...(group.ReschedulePolicy as Json | undefined) };
    const tasks = group.Tasks;
    if (!Array.isArray(tasks) || tasks.length === 0)
      throw new NomadHttpError(500, `1 error occurred:\n\t* Missing tasks for task group ${group.Name}\n\n`);
    for (const task of tasks as Json[]) {
      if (typeof task.Driver !== "string" || task.Driver === "")
        throw new NomadHttpError(500, `1 error occurred:\n\t* Task ${String(task.Name)} missing driver\n\n`);
      task.KillTimeout ??= 5 * NS;
    }
    const errors = groupValidationErrors(group);
    if (errors.length > 0) throw new NomadHttpError(500, multierror(errors));
    // Valid for Nomad, but the fake runs only prestart tasks that exit (docs/nomad-fake.md): refused, not run wrongly.
    for (const task of tasks as Json[]) {
      const hook = lifecycleHook(task);
      if (hook !== "" && (hook !== "prestart" || (task.Lifecycle as Json).Sidecar === true))
        throw new NomadHttpError(400, `fake-nomad runs only prestart tasks with sidecar false (task ${String(task.Name)}: ${hook})`);
    }
  }
  return job;
}

/** go-multierror's text, as Nomad answers a failed validation. */
function multierror(errors: string[]): string {
  return `${errors.length} error${errors.length === 1 ? "" : "s"} occurred:\n${errors.map((e) => `\t* ${e}\n`).join("")}\n`;
}

/** What Nomad compares to decide a destructive update (our subset: the spec without server fields). */
function specOf(job: Json): Json {
  const { CreateIndex: _c, ModifyIndex: _m, JobModifyIndex: _j, SubmitTime: _s, Version: _v, Status: _st, Stop: _stop, ...spec } = job;
  return spec;
}

export interface RegisterOutcome {
  job: Json;
  /** True when allocations must be (re)placed: a new job, a stopped one started again, or a changed spec. */
  place: boolean;
  previous: Json | undefined;
}

/** Stores a register; `EnforceIndex` is Nomad's check-and-set (0 = only if the job does not exist). */
export function registerJob(
  state: FakeNomadState,
  job: Json,
  enforce: { EnforceIndex?: unknown; JobModifyIndex?: unknown },
): RegisterOutcome {
  const namespace = String(job.Namespace);
  const previous = state.getJob(namespace, String(job.ID));
  if (enforce.EnforceIndex === true) {
    const wanted = Number(enforce.JobModifyIndex ?? 0);
    if (wanted === 0 && previous !== undefined) throw new NomadHttpError(500, "Enforcing job modify index 0: job already exists");
    if (wanted !== 0 && previous?.JobModifyIndex !== wanted) {
      throw new NomadHttpError(
        500,
        `Enforcing job modify index ${wanted}: job exists with conflicting job modify index: ${String(previous?.JobModifyIndex ?? 0)}`,
      );
    }
  }
  const changed = previous === undefined || previous.Stop === true || !isDeepStrictEqual(specOf(previous), specOf(job));
  const index = state.bump();
  const stored: Json = {
    ...job,
    Stop: false,
    Version: previous === undefined ? 0 : Number(previous.Version) + (changed ? 1 : 0),
    CreateIndex: previous?.CreateIndex ?? index,
    ModifyIndex: index,
    JobModifyIndex: changed || previous === undefined ? index : previous.JobModifyIndex,
    SubmitTime: Date.now() * 1_000_000,
  };
  state.jobs.set(state.jobKey(namespace, String(job.ID)), stored);
  return { job: stored, place: changed, previous };
}
