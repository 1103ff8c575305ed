import { posix } from "node:path";
import type { Json } from "./state.ts";

/**
 * The register-time validation rules of hashicorp/nomad's nomad/structs/structs.go for the fields our jobs send:
 * RestartPolicy.Validate, ReschedulePolicy.Validate (and validateDelayParams for "constant"),
 * Resources.MeetsMinResources (MinResources: CPU 1, MemoryMB 10), a non-negative KillTimeout and Template.Validate
 * (what to render, where, a change mode; signal and script modes are not checked further). Messages
 * are Nomad's; Nomad nests them under "Task group <name> validation failed", as here.
 */
const NS = 1_000_000_000;
const RESTART_MIN_INTERVAL = 5 * NS;
const RESCHEDULE_MIN_INTERVAL = 15 * NS;
const RESCHEDULE_MIN_DELAY = 5 * NS;
const DELAY_FUNCTIONS = ["constant", "exponential", "fibonacci"];

export function groupValidationErrors(group: Json): string[] {
  const errors = [...restartErrors(group.RestartPolicy as Json), ...rescheduleErrors(group.ReschedulePolicy as Json)];
  for (const task of (group.Tasks as Json[] | undefined) ?? []) {
    const resources = (task.Resources as Json | undefined) ?? {};
    if (resources.CPU !== undefined && Number(resources.CPU) < 1) errors.push(`minimum CPU value is 1; got ${String(resources.CPU)}`);
    if (resources.MemoryMB !== undefined && Number(resources.MemoryMB) < 10)
      errors.push(`minimum MemoryMB value is 10; got ${String(resources.MemoryMB)}`);
    if (Number(task.KillTimeout ?? 0) < 0) errors.push("KillTimeout must be a positive value");
    ((task.Templates as Json[] | null | undefined) ?? []).forEach((template, i) =>
      errors.push(...templateErrors(template).map((error) => `Template ${i + 1} validation failed: ${error}`)),
    );
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
