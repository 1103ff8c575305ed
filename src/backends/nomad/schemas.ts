import { z } from "zod";

/**
 * zod schemas for just the Nomad API fields we read (PascalCase, as in Nomad's Go `api` structs). Parsing at
 * this edge turns version drift into a clear error instead of `undefined` deep in the backend. The fake
 * Nomad serves the same shapes.
 */

const meta = z.record(z.string(), z.string()).nullish();

export const registerResponseSchema = z.object({
  EvalID: z.string().optional().default(""),
  EvalCreateIndex: z.number().optional().default(0),
  JobModifyIndex: z.number(),
  Warnings: z.string().optional().default(""),
});
export type RegisterResponse = z.infer<typeof registerResponseSchema>;

export const deregisterResponseSchema = z.object({
  EvalID: z.string().optional().default(""),
  EvalCreateIndex: z.number().optional().default(0),
  JobModifyIndex: z.number(),
});
export type DeregisterResponse = z.infer<typeof deregisterResponseSchema>;

export const jobSchema = z.object({
  ID: z.string(),
  Name: z.string(),
  Namespace: z.string(),
  Type: z.string(),
  Status: z.string(),
  Stop: z.boolean().optional().default(false),
  Meta: meta,
  Version: z.number().optional().default(0),
  JobModifyIndex: z.number(),
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
  SubmitTime: z.number().optional().default(0),
});
export type JobRead = z.infer<typeof jobSchema>;

export const jobStubSchema = z.object({
  ID: z.string(),
  Name: z.string(),
  Namespace: z.string().optional().default("default"),
  Type: z.string(),
  Status: z.string(),
  Stop: z.boolean().optional().default(false),
  Meta: meta,
  JobModifyIndex: z.number(),
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
  SubmitTime: z.number().optional().default(0),
});
export type JobStub = z.infer<typeof jobStubSchema>;

const portMapping = z.object({
  Label: z.string(),
  Value: z.number(),
  To: z.number().optional().default(0),
  HostIP: z.string().optional().default(""),
});

const networkResource = z.object({
  Mode: z.string().optional().default(""),
  IP: z.string().optional().default(""),
  DynamicPorts: z.array(z.object({ Label: z.string(), Value: z.number() })).nullish(),
  ReservedPorts: z.array(z.object({ Label: z.string(), Value: z.number() })).nullish(),
});

export const allocatedResourcesSchema = z.object({
  Shared: z
    .object({
      Ports: z.array(portMapping).nullish(),
      Networks: z.array(networkResource).nullish(),
    })
    .nullish(),
});

const taskEvent = z.object({
  Type: z.string(),
  Time: z.number().optional().default(0),
  DisplayMessage: z.string().optional().default(""),
  /** Set by the client's task runner when the driver cannot start the task (structs.TaskEvent.SetDriverError). */
  DriverError: z.string().optional().default(""),
});
export type TaskEvent = z.infer<typeof taskEvent>;

export const taskStateSchema = z.object({
  State: z.string(),
  Failed: z.boolean().optional().default(false),
  Restarts: z.number().optional().default(0),
  LastRestart: z.string().nullish(),
  StartedAt: z.string().nullish(),
  FinishedAt: z.string().nullish(),
  Events: z.array(taskEvent).nullish(),
});
export type TaskState = z.infer<typeof taskStateSchema>;

export const allocationStubSchema = z.object({
  ID: z.string(),
  EvalID: z.string().optional().default(""),
  Name: z.string(),
  Namespace: z.string().optional().default("default"),
  NodeID: z.string().optional().default(""),
  JobID: z.string(),
  TaskGroup: z.string(),
  DesiredStatus: z.string(),
  ClientStatus: z.string(),
  ClientDescription: z.string().optional().default(""),
  TaskStates: z.record(z.string(), taskStateSchema).nullish(),
  AllocatedResources: allocatedResourcesSchema.nullish(),
  NextAllocation: z.string().optional().default(""),
  PreviousAllocation: z.string().optional().default(""),
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
  CreateTime: z.number().optional().default(0),
});
export type AllocationStub = z.infer<typeof allocationStubSchema>;

export const allocationSchema = allocationStubSchema.extend({
  Job: z.unknown().optional(),
});
export type Allocation = z.infer<typeof allocationSchema>;

export const leaderSchema = z.string();

/** api/allocations.go AllocationMetric: why the scheduler placed nothing (the fields we report). */
const allocationMetric = z.object({
  NodesEvaluated: z.number().optional().default(0),
  NodesFiltered: z.number().optional().default(0),
  NodesExhausted: z.number().optional().default(0),
  ClassFiltered: z.record(z.string(), z.number()).nullish(),
  ConstraintFiltered: z.record(z.string(), z.number()).nullish(),
  DimensionExhausted: z.record(z.string(), z.number()).nullish(),
});
export type AllocationMetric = z.infer<typeof allocationMetric>;

/** api/evaluations.go Evaluation: `FailedTGAllocs` names the groups the scheduler could not place, and why. */
export const evaluationSchema = z.object({
  ID: z.string(),
  JobID: z.string(),
  Status: z.string(),
  StatusDescription: z.string().optional().default(""),
  BlockedEval: z.string().optional().default(""),
  FailedTGAllocs: z.record(z.string(), allocationMetric).nullish(),
  CreateIndex: z.number(),
});
export type Evaluation = z.infer<typeof evaluationSchema>;
