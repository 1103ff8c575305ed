import { posix } from "node:path";
import type { Json } from "./state.ts";

/**
 * The register-time validation rules of hashicorp/nomad's nomad/structs/structs.go for the fields our jobs send:
 * RestartPolicy.Validate, ReschedulePolicy.Validate (and validateDelayParams for "constant"),
 * Resources.MeetsMinResources (MinResources: CPU 1, MemoryMB 10), a non-negative KillTimeout, Template.Validate
 * (what to render, where, a change mode; signal and script modes are not checked further), TaskLifecycleConfig.Validate
 * (a hook among prestart, poststart, poststop; Sidecar is a bare bool with no rule) and TaskGroup.Validate's "at
 * least one main task" (Task.IsMain: no Lifecycle or an empty Hook). Messages
 * are Nomad's; Nomad nests a task's under "Task <name> validation failed" and all under "Task group <name>
 * validation failed", as here.
 */
const NS = 1_000_000_000;
const RESTART_MIN_INTERVAL = 5 * NS;
const RESCHEDULE_MIN_INTERVAL = 15 * NS;
const RESCHEDULE_MIN_DELAY = 5 * NS;
const DELAY_FUNCTIONS = ["constant", "exponential", "fibonacci"];
const LIFECYCLE_HOOKS = ["prestart", "poststart", "poststop"];

/** TaskLifecycleConfig.Validate; Sidecar has no rule. */
function lifecycleValidationError(task: Json): string | undefined {
  if (task.Lifecycle === null || task.Lifecycle === undefined) return undefined;
  const hook = lifecycleHook(task);
  if (hook === "") return "no lifecycle hook provided";
  return LIFECYCLE_HOOKS.includes(hook) ? undefined : `invalid hook: ${hook}`;
}

/** A task's lifecycle hook; "" for a main task (structs.go Task.IsMain). */
export function lifecycleHook(task: Json): string {
  return String((task.Lifecycle as Json | null | undefined)?.Hook ?? "");
}

export function groupValidationErrors(group: Json): string[] {
  const errors = [...restartErrors(group.RestartPolicy as Json), ...rescheduleErrors(group.ReschedulePolicy as Json)];
  const tasks = (group.Tasks as Json[] | undefined) ?? [];
  if (tasks.length > 0 && !tasks.some((task) => lifecycleHook(task) === "")) {
    errors.push(`Task group ${String(group.Name)} must have at least one main task`);
  }
  for (const task of tasks) {
    const taskErrors: string[] = [];
    const resources = (task.Resources as Json | undefined) ?? {};
    if (resources.CPU !== undefined && Number(resources.CPU) < 1) taskErrors.push(`minimum CPU value is 1; got ${String(resources.CPU)}`);
    if (resources.MemoryMB !== undefined && Number(resources.MemoryMB) < 10)
      taskErrors.push(`minimum MemoryMB value is 10; got ${String(resources.MemoryMB)}`);
    if (Number(task.KillTimeout ?? 0) < 0) taskErrors.push("KillTimeout must be a positive value");
    ((task.Templates as Json[] | null | undefined) ?? []).forEach((template, i) =>
      taskErrors.push(...templateErrors(template).map((error) => `Template ${i + 1} validation failed: ${error}`)),
    );
    const lifecycleError = lifecycleValidationError(task);
    if (lifecycleError !== undefined) taskErrors.push(`Lifecycle validation failed: ${lifecycleError}`);
    errors.push(...taskErrors.map((error) => `Task ${String(task.Name)} validation failed: ${error}`));
  }
  return errors.map((error) => `Task group ${String(group.Name)} validation failed: ${error}`);
}

function restartErrors(policy: Json): string[] {
  const errors: string[] = [];
  const [attempts, interval, delay, mode] = [Number(policy.Attempts), Number(policy.Interval), Number(policy.Delay), policy.Mode];
  if (mode !== "delay" && mode !== "fail") errors.push(`Unsupported restart mode: "${String(mode)}"`);
  if (attempts === 0 && mode !== "fail") errors.push(`Restart policy "${String(mode)}" with 0 attempts is ambiguous`);
  if (interval < RESTART_MIN_INTERVAL) errors.push(`Interval can not be less than 5s (got ${interval / NS}s)`);
  if (attempts * delay > interval) errors.push(`Nomad can't restart the TaskGroup ${attempts} times in an interval of ${interval / NS}s`);
  return errors;
}

function rescheduleErrors(policy: Json): string[] {
  const [attempts, interval, delay, maxDelay] = [
    Number(policy.Attempts),
    Number(policy.Interval),
    Number(policy.Delay),
    Number(policy.MaxDelay),
  ];
  const unlimited = policy.Unlimited === true;
  if (attempts === 0 && !unlimited) return []; // not enabled
  const errors: string[] = [];
  if (attempts > 0 && interval <= 0) errors.push("Interval must be a non zero value if Attempts > 0");
  if (attempts > 0 && unlimited) errors.push("If Attempts >0, Unlimited cannot also be set to true");
  if (delay < RESCHEDULE_MIN_DELAY) errors.push(`Delay cannot be less than 5s (got ${delay / NS}s)`);
  if (!DELAY_FUNCTIONS.includes(String(policy.DelayFunction))) errors.push(`Invalid delay function "${String(policy.DelayFunction)}"`);
  if (policy.DelayFunction !== "constant" && (maxDelay < RESCHEDULE_MIN_DELAY || maxDelay < delay))
    errors.push(`Max Delay cannot be less than Delay ${delay / NS}s (got ${maxDelay / NS}s)`);
  if (!unlimited) {
    if (interval < RESCHEDULE_MIN_INTERVAL) errors.push(`Interval cannot be less than 15s (got ${interval / NS}s)`);
    if (policy.DelayFunction === "constant" && attempts * delay > interval)
      errors.push(`Set the interval to at least ${(attempts * delay) / NS}s to accommodate ${attempts} attempts`);
  }
  return errors;
}

function templateErrors(template: Json): string[] {
  const errors: string[] = [];
  if (!template.SourcePath && !template.EmbeddedTmpl) errors.push("Must specify a source path or have an embedded template");
  const dest = String(template.DestPath ?? "");
  if (dest === "") errors.push("Must specify a destination for the template");
  // escapingfs.PathEscapesAllocViaRelative("task", dest): the destination, relative to the task dir, leaves the alloc dir.
  else if (posix.normalize(posix.join("alloc-dir/task", dest)).split("/")[0] !== "alloc-dir")
    errors.push("destination escapes allocation directory");
  if (!["noop", "restart", "signal", "script"].includes(String(template.ChangeMode ?? "restart")))
    errors.push("Invalid change mode. Must be one of the following: noop, signal, script, restart");
  return errors;
}
