import { z } from "zod";

/*
 * Condition types and reasons, one enum per kind, so the controller sets and compares them by name instead of by
 * string. docs/operations.md lists every reason with what to do (a unit test keeps the two in sync). The CRDs keep
 * `reason` an open CamelCase string, as metav1.Condition does: a new reason must not need a CRD upgrade.
 */

/** SandboxPool condition types. Ready is the authority: jobs start only on a Ready pool. */
export const poolConditionType = z.enum([
  "Ready", // enough sandboxes answer health checks for minSandboxes (or the demand)
  "Progressing", // sandboxes are being created or replaced
  "Degraded", // the backend failed or sandboxes died; the pool repairs itself
  "Isolated", // slots are isolated from each other (bubblewrap); Unknown until a sandbox was probed
]);

export const poolConditionReason = z.enum([
  "InvalidSpec", // Ready=False, Progressing=False, Degraded=True: the spec breaks a rule (the message names the field)
  "BackendError", // Ready=False (no sandbox ready), Degraded=True: the backend refused or could not be reached
  "SandboxesStarting", // Ready=False: fewer sandboxes ready than wanted; a started job keeps running through it
  "SandboxesReady", // Ready=True
  "Scaling", // Progressing=True: creating sandboxes
  "RollingOver", // Progressing=True: sandboxes on an old template are replaced, leased ones last
  "Stable", // Progressing=False
  "ImagePullFailed", // Ready=False: the kubelet cannot pull the sandbox image (ErrImagePull, ImagePullBackOff, InvalidImageName)
  "Unschedulable", // Ready=False: no node can take a sandbox pod (resources, nodeSelector, taints); the message says why
  "ContainerConfigError", // Ready=False: the kubelet cannot start the sandbox container (a missing Secret, a bad command)
  "SandboxFailed", // Degraded=True: sandboxes died and are being replaced
  "Healthy", // Degraded=False
  "IsolationUnavailable", // Ready=False: spec.isolation.mode is bwrap and bubblewrap cannot run (the message says why)
  "ProbeFailed", // Isolated=False: bubblewrap could not run; the pool is not Ready, no slot runs unisolated
  "DisabledBySpec", // Isolated=False: spec.isolation.mode is none, slots run unconfined as asked
  "Bubblewrap", // Isolated=True
  "NotProbed", // Isolated=Unknown: no ready sandbox was probed yet
]);

/**
 * RolloutJob condition types. Complete and Failed are terminal; Running says whether runners work now and why not;
 * ReplicaFailure (as a Deployment's and KubeRay's) is True while creating the job's runner pods or token Secret
 * fails, and is removed once a create succeeds.
 */
export const jobConditionType = z.enum(["Running", "Suspended", "Complete", "Failed", "ReplicaFailure"]);

export const jobConditionReason = z.enum([
  "InvalidSpec", // Failed=True, Running=False: the spec breaks a rule (the message names the field)
  "PoolNotFound", // Running=False: no SandboxPool of that name
  "PoolNotReady", // Running=False: the pool is not Ready (its own Ready reason in the message)
  "PoolDeleted", // Running=False: the pool went away under a started job; items wait without spending attempts
  "DatasetError", // Running=False: the dataset could not be read; retried
  "RunnersActive", // Running=True
  "ForwardingResults", // Running=True: every item is scored, groups are still on their way to the trainer
  "JobSuspended", // Suspended=True, Running=False
  "NotSuspended", // Suspended=False
  "AllItemsScored", // Complete=True
  "BackoffLimitExceeded", // Failed=True: items failed backoffLimit times on infrastructure errors
  "JobComplete", // Running=False once Complete
  "JobFailed", // Running=False once Failed
  "PodCreateFailed", // ReplicaFailure=True: the apiserver refused a runner pod (its message says why)
  "SecretCreateFailed", // ReplicaFailure=True: the apiserver refused the job's token Secret; no runner starts without it
]);

/** Reasons of the Events the job reconciler records on a RolloutJob. */
export const jobEventReason = z.enum([
  "InvalidSpec",
  "DatasetError",
  "PoolDeleted",
  "RunnerCreated",
  "PodCreateFailed",
  "SecretCreateFailed",
  "JobComplete",
  "JobFailed",
]);

export type PoolConditionType = z.infer<typeof poolConditionType>;
export type PoolConditionReason = z.infer<typeof poolConditionReason>;
export type JobConditionType = z.infer<typeof jobConditionType>;
export type JobConditionReason = z.infer<typeof jobConditionReason>;
export type JobEventReason = z.infer<typeof jobEventReason>;

/** The values by name: `JobReason.PoolDeleted` is the string "PoolDeleted", typed as that reason. */
export const PoolCondition = poolConditionType.enum;
export const PoolReason = poolConditionReason.enum;
export const JobCondition = jobConditionType.enum;
export const JobReason = jobConditionReason.enum;
export const JobEvent = jobEventReason.enum;
