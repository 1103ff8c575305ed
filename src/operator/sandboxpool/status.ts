import { PoolCondition, PoolReason, type PoolConditionReason, type PoolConditionType, type SandboxPoolStatus } from "../../api/index.ts";
import type { IsolationMode, SandboxInfo } from "../../backends/types.ts";
import { setConditions, type ConditionInput } from "../runtime/conditions.ts";
import type { PlanOutput } from "../../backends/slots/plan.ts";
import { isolationDiagnosis } from "../../backends/isolation.ts";

export interface PoolStatusInput {
  generation: number;
  previous: SandboxPoolStatus | undefined;
  sandboxes: readonly SandboxInfo[];
  /** spec.image: the image of sandboxes that name none. */
  image: string;
  /** Leased slots by sandbox name. */
  leasedBySandbox?: ReadonlyMap<string, number>;
  templateHash: string;
  slotsPerSandbox: number;
  leased: number;
  quarantined: number;
  /** As the last probed sandbox reports it. */
  isolation: IsolationMode | undefined;
  /** What that sandbox said with it (a weaker slot user, the limits it does not enforce). */
  isolationMessage?: string;
  /** spec.isolation.mode; "none" is shown as asked for, never as a failure. */
  isolationMode: IsolationMode;
  /** Under bwrap: why slots cannot be isolated (a failed probe, a sandbox that reports none); the pool is not Ready. */
  isolationError?: string;
  plan: PlanOutput | undefined;
  /** The spec's validation errors, each naming its field. */
  invalid?: string[];
  /** The last backend failure of this pass (create, list, terminate). */
  backendError?: string;
  now: Date;
}

/** The pool's status as a pure function of what this pass observed. */
export function computePoolStatus(input: PoolStatusInput): SandboxPoolStatus {
  const count = (phase: SandboxInfo["phase"]) => input.sandboxes.filter((s) => s.phase === phase).length;
  const ready = count("ready");
  const total = ready * input.slotsPerSandbox;
  const images = sandboxesPerImage(input);
  const sandboxes = { ready, starting: count("starting"), failed: count("failed"), images: images.length };
  const slots = {
    total,
    leased: input.leased,
    quarantined: input.quarantined,
    free: Math.max(0, total - input.leased - input.quarantined),
  };
  const conditions = setConditions(input.previous?.conditions, poolConditions(input, sandboxes), input.generation, input.now);
  const status: SandboxPoolStatus = {
    observedGeneration: input.generation,
    conditions,
    sandboxes,
    slots,
    templateHash: input.templateHash,
  };
  if (images.length > 0) status.images = images.slice(0, STATUS_IMAGES);
  if (input.isolation) status.isolation = input.isolation;
  return status;
}

/** How many images status.images lists: a pool may serve hundreds (one per repository), status stays small. */
export const STATUS_IMAGES = 10;

type ImageCounts = NonNullable<SandboxPoolStatus["images"]>[number];

/** Ready and starting sandboxes and leased slots per image, the images with the most sandboxes first (then by name). */
export function sandboxesPerImage(input: Pick<PoolStatusInput, "sandboxes" | "image" | "leasedBySandbox">): ImageCounts[] {
  const byImage = new Map<string, ImageCounts>();
  for (const sandbox of input.sandboxes) {
    if (sandbox.phase !== "ready" && sandbox.phase !== "starting") continue;
    const image = sandbox.image ?? input.image;
    const counts = byImage.get(image) ?? { image, ready: 0, starting: 0, leased: 0 };
    counts[sandbox.phase]++;
    counts.leased += input.leasedBySandbox?.get(sandbox.name) ?? 0;
    byImage.set(image, counts);
  }
  const size = (counts: ImageCounts) => counts.ready + counts.starting;
  return [...byImage.values()].sort((a, b) => size(b) - size(a) || a.image.localeCompare(b.image));
}

type PoolConditionInput = ConditionInput<PoolConditionType, PoolConditionReason>;

function poolConditions(input: PoolStatusInput, counts: { ready: number; starting: number; failed: number }): PoolConditionInput[] {
  if (input.invalid) {
    const message = input.invalid.join("; ");
    return [
      { type: PoolCondition.Ready, status: "False", reason: PoolReason.InvalidSpec, message },
      {
        type: PoolCondition.Progressing,
        status: "False",
        reason: PoolReason.InvalidSpec,
        message: "fix the spec; nothing is created until it is valid",
      },
      { type: PoolCondition.Degraded, status: "True", reason: PoolReason.InvalidSpec, message },
    ];
  }
  const desired = input.plan?.desired ?? 0;
  const outdated = input.sandboxes.filter((s) => s.templateHash !== input.templateHash && s.phase !== "terminated").length;
  // Also at 0/0: a scale-to-zero pool at rest is Ready, or no job would start on it to bring the demand.
  // A sandbox that waits on what only a fix clears (an image that cannot be pulled) says more than a create's error.
  const stuck = input.sandboxes.find((s) => s.phase === "starting" && s.stuck !== undefined);
  const ready: PoolConditionInput =
    input.isolationError !== undefined
      ? { type: PoolCondition.Ready, status: "False", reason: PoolReason.IsolationUnavailable, message: input.isolationError }
      : stuck?.stuck !== undefined && counts.ready < Math.max(1, desired)
        ? { type: PoolCondition.Ready, status: "False", reason: stuck.stuck, message: `${stuck.name}: ${stuck.message ?? stuck.stuck}` }
        : input.backendError && counts.ready === 0
          ? { type: PoolCondition.Ready, status: "False", reason: PoolReason.BackendError, message: input.backendError }
          : input.plan !== undefined && counts.ready >= desired
            ? {
                type: PoolCondition.Ready,
                status: "True",
                reason: PoolReason.SandboxesReady,
                message: `${counts.ready}/${desired} sandboxes ready`,
              }
            : {
                type: PoolCondition.Ready,
                status: "False",
                reason: PoolReason.SandboxesStarting,
                message: `${counts.ready}/${desired} sandboxes ready, ${counts.starting} starting`,
              };
  const progressing: PoolConditionInput =
    outdated > 0
      ? {
          type: PoolCondition.Progressing,
          status: "True",
          reason: PoolReason.RollingOver,
          message: `${outdated} sandbox(es) on an old template; leased ones drain first`,
        }
      : counts.ready + counts.starting < desired || counts.starting > 0
        ? {
            type: PoolCondition.Progressing,
            status: "True",
            reason: PoolReason.Scaling,
            message: `${counts.ready + counts.starting}/${desired} sandboxes`,
          }
        : {
            type: PoolCondition.Progressing,
            status: "False",
            reason: PoolReason.Stable,
            message: `${counts.ready} sandbox(es) on template ${input.templateHash}`,
          };
  const degraded: PoolConditionInput = input.backendError
    ? { type: PoolCondition.Degraded, status: "True", reason: PoolReason.BackendError, message: input.backendError }
    : counts.failed > 0
      ? {
          type: PoolCondition.Degraded,
          status: "True",
          reason: PoolReason.SandboxFailed,
          message: `${counts.failed} sandbox(es) failed and are being replaced`,
        }
      : { type: PoolCondition.Degraded, status: "False", reason: PoolReason.Healthy, message: "" };
  return [ready, progressing, degraded, isolatedCondition(input)];
}

export function isolatedCondition(
  input: Pick<PoolStatusInput, "isolation" | "isolationMode" | "isolationError" | "isolationMessage">,
): PoolConditionInput {
  const type = PoolCondition.Isolated;
  if (input.isolationError !== undefined) {
    const diagnosis = isolationDiagnosis(input.isolationError);
    const message = diagnosis === undefined ? input.isolationError : `${input.isolationError} (${diagnosis})`;
    return { type, status: "False", reason: PoolReason.ProbeFailed, message };
  }
  if (input.isolationMode === "none") {
    return {
      type,
      status: "False",
      reason: PoolReason.DisabledBySpec,
      message: "spec.isolation.mode is none: slot commands run unconfined, a model can reach other slots and the host",
    };
  }
  return input.isolation === "bwrap"
    ? { type, status: "True", reason: PoolReason.Bubblewrap, message: input.isolationMessage ?? "" }
    : { type, status: "Unknown", reason: PoolReason.NotProbed, message: "" };
}
