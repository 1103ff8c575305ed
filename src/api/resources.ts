import type { z } from "zod";
import { rolloutJobSpec, rolloutJobStatus } from "./rolloutjob.ts";
import { sandboxPoolSpec, sandboxPoolStatus } from "./sandboxpool.ts";

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
}

export interface ResourceDefinition {
  kind: "SandboxPool" | "RolloutJob";
  plural: string;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
}

const age: PrinterColumn = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp", description: "Time since creation." };

export const sandboxPoolResource: ResourceDefinition = {
  kind: "SandboxPool",
  plural: "sandboxpools",
  shortNames: ["sbp", "pool"],
  description:
    "SandboxPool keeps warm sandboxes on Modal, Nomad or the local host; each hosts slotsPerSandbox isolated slots that " +
    "runners lease per trajectory.",
  spec: sandboxPoolSpec,
  status: sandboxPoolStatus,
  printerColumns: [
    { name: "Backend", type: "string", jsonPath: ".spec.backend", description: "Where sandboxes run." },
    { name: "Ready", type: "integer", jsonPath: ".status.sandboxes.ready", description: "Ready sandboxes." },
    { name: "Images", type: "integer", jsonPath: ".status.sandboxes.images", description: "Distinct images among the sandboxes." },
    { name: "Free", type: "integer", jsonPath: ".status.slots.free", description: "Free slots." },
    { name: "Slots", type: "integer", jsonPath: ".status.slots.total", description: "Slots on ready sandboxes." },
    {
      name: "Status",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
      description: "Reason of the Ready condition.",
    },
    age,
  ],
};

export const rolloutJobResource: ResourceDefinition = {
  kind: "RolloutJob",
  plural: "rolloutjobs",
  shortNames: ["rj", "rollout"],
  description:
    "RolloutJob runs groupSize agent trajectories per dataset item in leased sandbox slots, scores them with an " +
    "environment, and sends scored groups to a results sink.",
  spec: rolloutJobSpec,
  status: rolloutJobStatus,
  printerColumns: [
    { name: "Pool", type: "string", jsonPath: ".spec.poolRef.name", description: "SandboxPool in use." },
    { name: "Status", type: "string", jsonPath: ".status.phase", description: "Pending, Running, Suspended, Complete or Failed." },
    { name: "Progress", type: "string", jsonPath: ".status.progressSummary", description: "Finished items out of all items." },
    { name: "Pass-Rate", type: "number", jsonPath: ".status.passRate", description: "Fraction of trajectories scoring 1.0." },
    { name: "Mean-Score", type: "number", jsonPath: ".status.scoreMean", description: "Mean trajectory score.", priority: 1 },
    age,
  ],
};

export const resources: ResourceDefinition[] = [sandboxPoolResource, rolloutJobResource];
