/**
 * The fake Nomad's in-memory state, after github.com/hashicorp/nomad at aa026cc: one global, monotonic index bumped
 * on every write (as the raft index of nomad/state/state_store.go), jobs keyed by namespace and ID, allocations, and
 * Variables (nomad/structs/variables.go). Objects are stored in Nomad's own JSON shape (PascalCase, as api/jobs.go,
 * api/allocations.go and api/variables.go decode them) so the HTTP layer only selects fields. Differences kept on
 * purpose: docs/nomad-fake.md.
 */
import { randomUUID } from "node:crypto";

export type Json = Record<string, unknown>;

export interface TaskStateRecord {
  State: "pending" | "running" | "dead";
  Failed: boolean;
  Restarts: number;
  LastRestart: string | null;
  StartedAt: string | null;
  FinishedAt: string | null;
  Events: { Type: string; Time: number; DisplayMessage: string; Message: string; DriverError?: string }[];
}

export function newTaskState(): TaskStateRecord {
  return { State: "pending", Failed: false, Restarts: 0, LastRestart: null, StartedAt: null, FinishedAt: null, Events: [] };
}

export function pushEvent(state: TaskStateRecord, type: string, message: string, fields: { DriverError?: string } = {}): void {
  state.Events.push({ Type: type, Time: Date.now() * 1_000_000, DisplayMessage: message, Message: message, ...fields });
}

/** The task is over: dead, and failed unless it completed. */
export function markDead(state: TaskStateRecord, failed: boolean): void {
  state.State = "dead";
  state.Failed = failed;
  state.FinishedAt = new Date().toISOString();
}

/** A placed alloc's AllocatedResources: each task's CPU and memory, and the group's host ports on the loopback. */
export function allocatedResources(tasks: Json[], dynamic: Json[], ports: { Label: string; Value: number; To: number }[]): Json {
  const dynamicPorts = ports.filter((p) => dynamic.some((d) => d.Label === p.Label));
  return {
    Tasks: Object.fromEntries(
      tasks.map((t) => [
        String(t.Name),
        {
          Cpu: { CpuShares: (t.Resources as Json | undefined)?.CPU ?? 100 },
          Memory: { MemoryMB: (t.Resources as Json | undefined)?.MemoryMB ?? 300 },
          Networks: null,
        },
      ]),
    ),
    Shared: {
      DiskMB: 300,
      Networks: [
        {
          Mode: "host",
          Device: "lo",
          IP: "127.0.0.1",
          CIDR: "",
          DynamicPorts: dynamicPorts.map(({ Label, Value, To }) => ({ Label, Value, To, HostNetwork: "default" })),
          ReservedPorts: null,
        },
      ],
      Ports: ports,
    },
  };
}

export interface AllocRecord {
  ID: string;
  EvalID: string;
  Name: string;
  Namespace: string;
  NodeID: string;
  NodeName: string;
  JobID: string;
  JobVersion: number;
  TaskGroup: string;
  DesiredStatus: "run" | "stop" | "evict";
  DesiredDescription: string;
  ClientStatus: "pending" | "running" | "complete" | "failed" | "lost";
  ClientDescription: string;
  TaskStates: Record<string, TaskStateRecord>;
  AllocatedResources: Json;
  PreviousAllocation: string;
  NextAllocation: string;
  RescheduleTracker: { Events: { PrevAllocID: string; RescheduleTime: number }[] } | null;
  CreateIndex: number;
  ModifyIndex: number;
  CreateTime: number;
  ModifyTime: number;
  /** The job as it was when placed (Nomad keeps it on the alloc). */
  Job: Json;
}

/** api/variables.go Variable. */
export interface VariableRecord {
  Namespace: string;
  Path: string;
  Items: Record<string, string>;
  CreateIndex: number;
  CreateTime: number;
  ModifyIndex: number;
  ModifyTime: number;
}

export const FAKE_NODE_ID = "f4ce0000-0000-4000-8000-000000000001";
export const FAKE_NODE_NAME = "fake-nomad-node";

export class FakeNomadState {
  index = 1;
  readonly namespaces: Set<string>;
  readonly jobs = new Map<string, Json>();
  readonly allocs = new Map<string, AllocRecord>();
  /** Evaluations in api/evaluations.go's shape, by ID. */
  readonly evals = new Map<string, Json>();
  /** Nomad Variables by namespace and path (stored decrypted: the fake has no keyring). */
  readonly variables = new Map<string, VariableRecord>();
  private waiters = new Set<() => void>();

  constructor(namespaces: readonly string[] = []) {
    this.namespaces = new Set(["default", ...namespaces]);
  }

  /** Every write ends here: a new index, and every parked blocking query re-runs. */
  bump(): number {
    this.index += 1;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
    return this.index;
  }

  /** Parks until the index passes `afterIndex` or `waitMs` (+ up to 1/16 jitter, as Nomad) elapses. */
  async waitForIndex(afterIndex: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + waitMs + Math.random() * (waitMs / 16);
    while (this.index <= afterIndex && Date.now() < deadline && signal?.aborted !== true) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
        signal?.addEventListener("abort", wake);
        this.waiters.add(wake);
      });
    }
  }

  jobKey(namespace: string, id: string): string {
    return `${namespace}\u0000${id}`;
  }

  getJob(namespace: string, id: string): Json | undefined {
    return this.jobs.get(this.jobKey(namespace, id));
  }

  jobAllocs(namespace: string, id: string): AllocRecord[] {
    return [...this.allocs.values()].filter((a) => a.Namespace === namespace && a.JobID === id);
  }

  /** Nomad's derived job status: dead when stopped or nothing runs, running when an alloc runs. */
  jobStatus(job: Json): string {
    const allocs = this.jobAllocs(String(job.Namespace), String(job.ID));
    if (allocs.some((a) => a.ClientStatus === "running")) return "running";
    if (job.Stop === true) return "dead";
    return "pending";
  }

  /** A pending evaluation of the job (register, deregister), as the register and deregister endpoints create. */
  newEval(job: Json, triggeredBy: string, status = "pending"): Json {
    const index = this.bump();
    const evaluation: Json = {
      ID: randomUUID(),
      Namespace: job.Namespace,
      JobID: job.ID,
      Type: job.Type,
      TriggeredBy: triggeredBy,
      Status: status,
      StatusDescription: "",
      BlockedEval: "",
      FailedTGAllocs: null,
      CreateIndex: index,
      ModifyIndex: index,
    };
    this.evals.set(String(evaluation.ID), evaluation);
    return evaluation;
  }

  /** The scheduler could place nothing for `group`: FailedTGAllocs on the eval, plus a blocked eval, as Nomad. */
  failPlacement(evaluation: Json, group: string, constraintFiltered: Record<string, number>): void {
    const blocked = this.newEval(
      { Namespace: evaluation.Namespace, ID: evaluation.JobID, Type: evaluation.Type },
      "queued-allocs",
      "blocked",
    );
    const nodes = Object.values(constraintFiltered).reduce((sum, n) => sum + n, 0);
    evaluation.FailedTGAllocs = {
      ...(evaluation.FailedTGAllocs as Json | null),
      [group]: {
        NodesEvaluated: nodes,
        NodesFiltered: nodes,
        NodesExhausted: 0,
        ConstraintFiltered: constraintFiltered,
        CoalescedFailures: 0,
      },
    };
    evaluation.BlockedEval = blocked.ID;
  }

  finishEval(evaluation: Json): void {
    evaluation.Status = "complete";
    evaluation.ModifyIndex = this.bump();
  }

  jobEvals(namespace: string, id: string): Json[] {
    return [...this.evals.values()].filter((e) => e.Namespace === namespace && e.JobID === id);
  }

  /** Summary.Queued: allocations the newest placing evaluation could not place (none once the job stops). */
  queued(job: Json, group: string): number {
    if (job.Stop === true) return 0;
    const newest = this.jobEvals(String(job.Namespace), String(job.ID))
      .filter((e) => e.Status !== "blocked")
      .sort((a, b) => Number(b.CreateIndex) - Number(a.CreateIndex))[0];
    const failed = (newest?.FailedTGAllocs as Json | null | undefined)?.[group];
    return failed === undefined ? 0 : Number((job.TaskGroups as Json[]).find((g) => g.Name === group)?.Count ?? 1);
  }

  touchAlloc(alloc: AllocRecord): void {
    alloc.ModifyIndex = this.bump();
    alloc.ModifyTime = Date.now() * 1e6;
  }

  newAllocId(): string {
    return randomUUID();
  }
}

/** The stub Nomad lists; `AllocatedResources` only when asked (never on `/v1/job/:id/allocations`). */
export function allocStub(alloc: AllocRecord, options: { resources: boolean; taskStates: boolean }): Json {
  const { Job: _job, AllocatedResources, TaskStates, PreviousAllocation: _previous, ...rest } = alloc;
  const stub: Json = { ...rest, JobType: "service", FollowupEvalID: "", DeploymentStatus: null };
  stub.TaskStates = options.taskStates ? TaskStates : null;
  if (options.resources) stub.AllocatedResources = AllocatedResources;
  return stub;
}

export function jobStub(state: FakeNomadState, job: Json, withMeta: boolean): Json {
  const allocs = state.jobAllocs(String(job.Namespace), String(job.ID));
  const count = (status: string): number => allocs.filter((a) => a.ClientStatus === status).length;
  const stub: Json = {
    ID: job.ID,
    ParentID: "",
    Name: job.Name,
    Namespace: job.Namespace,
    Datacenters: job.Datacenters,
    Type: job.Type,
    Priority: job.Priority,
    Periodic: false,
    ParameterizedJob: false,
    Stop: job.Stop,
    Status: state.jobStatus(job),
    StatusDescription: "",
    JobSummary: {
      JobID: job.ID,
      Namespace: job.Namespace,
      Summary: {
        [String((job.TaskGroups as Json[])[0]?.Name ?? "")]: {
          Queued: state.queued(job, String((job.TaskGroups as Json[])[0]?.Name ?? "")),
          Complete: count("complete"),
          Failed: count("failed"),
          Running: count("running"),
          Starting: count("pending"),
          Lost: count("lost"),
          Unknown: 0,
        },
      },
    },
    CreateIndex: job.CreateIndex,
    ModifyIndex: job.ModifyIndex,
    JobModifyIndex: job.JobModifyIndex,
    SubmitTime: job.SubmitTime,
  };
  if (withMeta) stub.Meta = job.Meta ?? {};
  return stub;
}
