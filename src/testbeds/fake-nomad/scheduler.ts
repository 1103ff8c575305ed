import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { errorMessage } from "../../base/errors.ts";
import { logger } from "../../base/log.ts";
import { freePort, interpolate, killGroup, nomadVariables } from "./process.ts";
import {
  FAKE_NODE_ID,
  FAKE_NODE_NAME,
  allocatedResources,
  markDead,
  newTaskState,
  pushEvent,
  type AllocRecord,
  type FakeNomadState,
  type Json,
} from "./state.ts";
import { lifecycleHook } from "./validate.ts";
import { renderTemplate } from "./variables.ts";

const log = logger("fake-nomad");
const NS_PER_MS = 1_000_000;
/** The drivers the fake node has (its /v1/nodes lists them healthy); any other is a missing driver. */
export const FAKE_DRIVERS: readonly string[] = ["raw_exec", "exec"];

export interface SchedulerOptions {
  dataDir: string;
  /** Delay of an evaluation (Nomad evaluates asynchronously): a register's placement, a deregister's stop. */
  placementDelayMs: number;
  /** Caps Nomad's reschedule delay so tests do not wait the job's 5 s. */
  maxRescheduleDelayMs: number;
}

interface RunningTask {
  process: ChildProcess;
  /** Set when we kill it on purpose: the exit then follows our intent, not the restart policy. */
  intent?: "stop" | "restart" | "lost";
}

/**
 * Places allocations and runs their tasks as real processes, as raw_exec does: each task gets its alloc dir, `NOMAD_*`
 * variables and a free host port per dynamic port label; prestart tasks run before the main ones (hashicorp/nomad
 * client/allocrunner/tasklifecycle/coordinator.go, taskrunner/restarts/restarts.go, alloc_runner.go); exits follow
 * the group's RestartPolicy (same alloc, same port) and then its ReschedulePolicy (a new alloc with a new port).
 */
export class FakeScheduler {
  private readonly state: FakeNomadState;
  private readonly options: SchedulerOptions;
  private readonly tasks = new Map<string, RunningTask>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(state: FakeNomadState, options: SchedulerOptions) {
    this.state = state;
    this.options = options;
  }

  /**
   * Runs the register's evaluation after the eval delay. As Nomad's scheduler (scheduler/feasible/feasible.go,
   * FilterConstraintDrivers): a task whose driver no node has is not placed at all; the evaluation completes
   * with `FailedTGAllocs` ("missing drivers") and a blocked evaluation waits for a node that has it.
   */
  placeJob(job: Json, evaluation: Json): void {
    this.later(this.options.placementDelayMs, async () => {
      for (const group of job.TaskGroups as Json[]) {
        const missing = (group.Tasks as Json[]).some((task) => !FAKE_DRIVERS.includes(String(task.Driver)));
        if (missing) {
          this.state.failPlacement(evaluation, String(group.Name), { "missing drivers": 1 });
          continue;
        }
        for (let i = 0; i < Number(group.Count ?? 1); i++) await this.place(job, group, i, undefined);
      }
      this.state.finishEval(evaluation);
    });
  }

  /**
   * Stops every live alloc of a job once its deregister evaluation runs (Nomad: eval, plan, then the client):
   * the kill signal (SIGINT, the raw_exec/exec executor's default), KillTimeout, SIGKILL, then `complete`.
   */
  stopJob(namespace: string, id: string, evaluation: Json): void {
    this.later(this.options.placementDelayMs, () => {
      for (const alloc of this.state.jobAllocs(namespace, id)) this.stopAlloc(alloc, "alloc not needed due to job update");
      this.state.finishEval(evaluation);
    });
  }

  stopAlloc(alloc: AllocRecord, why: string): void {
    if (alloc.DesiredStatus !== "run") return;
    alloc.DesiredStatus = "stop";
    alloc.DesiredDescription = why;
    this.state.touchAlloc(alloc);
    const killed = this.killTasks(alloc, "stop", "SIGINT");
    // Tasks with no process (a main task still behind its prestart tasks, one waiting to restart) never run now.
    for (const [name, state] of Object.entries(alloc.TaskStates)) {
      if (state.State !== "dead" && !this.tasks.has(taskKey(alloc, name))) markDead(state, false);
    }
    if (!killed) this.finish(alloc, "complete");
  }

  /** `POST /v1/allocation/:id/stop`: stop it and place a replacement (the job's count is unchanged). */
  async stopAndReplace(alloc: AllocRecord): Promise<AllocRecord | undefined> {
    this.stopAlloc(alloc, "alloc was stopped by the user");
    return this.replace(alloc);
  }

  /** Fault: the node lost the alloc. Its process is killed unless `leaveRunning` (a partitioned node). */
  async lose(alloc: AllocRecord, leaveRunning: boolean): Promise<AllocRecord | undefined> {
    alloc.DesiredStatus = "stop";
    alloc.DesiredDescription = "alloc is lost since its node is down";
    alloc.ClientStatus = "lost";
    alloc.ClientDescription = "alloc is lost since its node is down";
    for (const state of Object.values(alloc.TaskStates)) state.State = "dead";
    if (!leaveRunning) this.killTasks(alloc, "lost", "SIGKILL");
    this.state.touchAlloc(alloc);
    return this.replace(alloc);
  }

  /** `POST /v1/client/allocation/:id/restart`: same alloc and port, fresh process, Restarts + 1. */
  restartInPlace(alloc: AllocRecord): void {
    for (const [name, state] of Object.entries(alloc.TaskStates)) {
      pushEvent(state, "Restart Signaled", "User requested task to restart");
      const task = this.tasks.get(taskKey(alloc, name));
      if (task === undefined) continue;
      task.intent = "restart";
      killGroup(task.process, "SIGKILL");
    }
    this.state.touchAlloc(alloc);
  }

  /** Fault: the task crashes; what follows is the restart policy's business. */
  crash(alloc: AllocRecord): void {
    this.killTasks(alloc, undefined, "SIGKILL");
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    const exits = [...this.tasks.values()].map((task) => {
      task.intent = "stop";
      const exited = new Promise((resolve) => task.process.once("exit", resolve));
      killGroup(task.process, "SIGKILL");
      return exited;
    });
    await Promise.all(exits);
  }

  private async replace(previous: AllocRecord): Promise<AllocRecord | undefined> {
    const job = this.state.getJob(previous.Namespace, previous.JobID);
    if (job === undefined || job.Stop === true) return undefined;
    const group = (job.TaskGroups as Json[]).find((g) => g.Name === previous.TaskGroup);
    if (group === undefined) return undefined;
    const index = Number(/\[(\d+)\]$/.exec(previous.Name)?.[1] ?? 0);
    return this.place(job, group, index, previous);
  }

  private async place(job: Json, group: Json, index: number, previous: AllocRecord | undefined): Promise<AllocRecord | undefined> {
    if (this.closed) return undefined;
    const id = this.state.newAllocId();
    const networks = (group.Networks as Json[] | undefined) ?? [];
    const dynamic = networks.flatMap((n) => (n.DynamicPorts as Json[] | undefined) ?? []);
    const reserved = networks.flatMap((n) => (n.ReservedPorts as Json[] | undefined) ?? []);
    const ports = [
      ...(await Promise.all(
        dynamic.map(async (p) => ({ Label: String(p.Label), Value: await freePort(), To: Number(p.To ?? 0), HostIP: "127.0.0.1" })),
      )),
      ...reserved.map((p) => ({ Label: String(p.Label), Value: Number(p.Value), To: Number(p.To ?? 0), HostIP: "127.0.0.1" })),
    ];
    const tasks = group.Tasks as Json[];
    const now = Date.now();
    const alloc: AllocRecord = {
      ID: id,
      EvalID: this.state.newAllocId(),
      Name: `${String(job.ID)}.${String(group.Name)}[${index}]`,
      Namespace: String(job.Namespace),
      NodeID: FAKE_NODE_ID,
      NodeName: FAKE_NODE_NAME,
      JobID: String(job.ID),
      JobVersion: Number(job.Version ?? 0),
      TaskGroup: String(group.Name),
      DesiredStatus: "run",
      DesiredDescription: "",
      ClientStatus: "pending",
      ClientDescription: "No tasks have started",
      TaskStates: Object.fromEntries(tasks.map((t) => [String(t.Name), newTaskState()])),
      AllocatedResources: allocatedResources(tasks, dynamic, ports),
      PreviousAllocation: previous?.ID ?? "",
      NextAllocation: "",
      RescheduleTracker:
        previous === undefined
          ? null
          : { Events: [...(previous.RescheduleTracker?.Events ?? []), { PrevAllocID: previous.ID, RescheduleTime: now * NS_PER_MS }] },
      CreateIndex: 0,
      ModifyIndex: 0,
      CreateTime: now * NS_PER_MS,
      ModifyTime: now * NS_PER_MS,
      Job: job,
    };
    alloc.CreateIndex = this.state.bump();
    alloc.ModifyIndex = alloc.CreateIndex;
    this.state.allocs.set(id, alloc);
    if (previous !== undefined) {
      previous.NextAllocation = id;
      this.state.touchAlloc(previous);
    }
    const allocDir = join(this.options.dataDir, "allocs", id, "alloc");
    mkdirSync(join(allocDir, "data"), { recursive: true });
    const prestart = tasks.filter((task) => lifecycleHook(task) === "prestart");
    for (const task of prestart.length > 0 ? prestart : tasks) this.startTask(alloc, task, allocDir);
    return alloc;
  }

  /**
   * A prestart task exited 0: it is done, not restarted (restarts.go: onSuccess is Sidecar, false here). Once every
   * prestart task has, the main tasks start (client/allocrunner/tasklifecycle/coordinator.go).
   */
  private prestartDone(alloc: AllocRecord, task: Json, allocDir: string): void {
    markDead(alloc.TaskStates[String(task.Name)]!, false);
    this.state.touchAlloc(alloc);
    const tasks = groupOf(alloc).Tasks as Json[];
    const prestart = tasks.filter((t) => lifecycleHook(t) === "prestart");
    if (!prestart.every((t) => alloc.TaskStates[String(t.Name)]!.State === "dead")) return;
    for (const main of tasks.filter((t) => lifecycleHook(t) === "")) this.startTask(alloc, main, allocDir);
  }

  private startTask(alloc: AllocRecord, task: Json, allocDir: string): void {
    const name = String(task.Name);
    const taskState = alloc.TaskStates[name]!;
    const taskDir = join(allocDir, "..", name);
    mkdirSync(join(taskDir, "local"), { recursive: true });
    const vars = nomadVariables(alloc, name, allocDir, taskDir);
    const config = (task.Config as Json | undefined) ?? {};
    const command = interpolate(String(config.command ?? ""), vars);
    const args = ((config.args as string[] | undefined) ?? []).map((a) => interpolate(a, vars));
    const taskEnv = Object.fromEntries(
      Object.entries((task.Env as Record<string, string> | undefined) ?? {}).map(([k, v]) => [k, interpolate(v, vars)]),
    );
    pushEvent(taskState, "Task Setup", "Building Task Directory");
    if (!this.renderTemplates(alloc, task, taskDir)) return;
    const child = spawn(command, args, {
      cwd: taskDir,
      env: { ...process.env, ...vars, ...taskEnv },
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderrTail = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderrTail = (stderrTail + chunk.toString()).slice(-2000)));
    const running: RunningTask = { process: child };
    this.tasks.set(taskKey(alloc, name), running);
    child.once("spawn", () => {
      taskState.State = "running";
      taskState.StartedAt = new Date().toISOString();
      pushEvent(taskState, "Started", "Task started by client");
      if (alloc.ClientStatus === "pending") {
        alloc.ClientStatus = "running";
        alloc.ClientDescription = "Tasks are running";
      }
      this.state.touchAlloc(alloc);
    });
    // A process that cannot start (Node emits "error" and no "exit"): the task runner's "Driver Failure", then
    // the restart policy, as client/allocrunner/taskrunner/task_runner.go does (Driver Failure is recoverable).
    child.once("error", (error) => {
      this.tasks.delete(taskKey(alloc, name));
      if (this.closed || alloc.DesiredStatus !== "run") return;
      pushEvent(taskState, "Driver Failure", `failed to launch command with executor: ${error.message}`, { DriverError: error.message });
      this.onUnexpectedExit(alloc, task, allocDir);
    });
    child.once("exit", (code, signal) => {
      this.tasks.delete(taskKey(alloc, name));
      if (this.closed) return;
      const message = `Exit Code: ${code ?? 137}${signal ? `, Signal: ${signal}` : ""}`;
      pushEvent(taskState, "Terminated", message);
      if (running.intent === "lost") return;
      if (running.intent === "restart") return this.restartTask(alloc, task, allocDir, 0);
      if (running.intent === "stop" || alloc.DesiredStatus !== "run") {
        markDead(taskState, false);
        if (Object.values(alloc.TaskStates).every((s) => s.State === "dead")) this.finish(alloc, "complete");
        else this.state.touchAlloc(alloc);
        return;
      }
      if (code === 0 && lifecycleHook(task) === "prestart") return this.prestartDone(alloc, task, allocDir);
      if (stderrTail !== "") log.debug({ alloc: alloc.ID, task: name, stderr: stderrTail }, "task exited");
      this.onUnexpectedExit(alloc, task, allocDir);
    });
  }

  /**
   * Renders the task's templates into its dir before it starts, as the template hook does on every (re)start. A
   * template that fails kills the task for good (the hook's "Template failed"); returns whether the task may start.
   */
  private renderTemplates(alloc: AllocRecord, task: Json, taskDir: string): boolean {
    const taskState = alloc.TaskStates[String(task.Name)]!;
    try {
      for (const template of (task.Templates as Json[] | null | undefined) ?? []) {
        const dest = join(taskDir, String(template.DestPath));
        mkdirSync(dirname(dest), { recursive: true });
        writeFileSync(dest, renderTemplate(this.state, alloc.Namespace, String(template.EmbeddedTmpl)), {
          mode: Number.parseInt(String(template.Perms || "0644"), 8),
        });
      }
      return true;
    } catch (error) {
      pushEvent(taskState, "Killing", `Template failed: ${errorMessage(error)}`);
      markDead(taskState, true);
      this.finish(alloc, "failed");
      return false;
    }
  }

  /**
   * A task failed for good: the alloc runner tells every other live task "Sibling Task Failed" and kills them
   * (client/allocrunner/alloc_runner.go, handleTaskStateUpdates; killTasks adds "Killing"). One that never
   * started (a main task behind a failed prestart task) goes dead without running.
   */
  private failSiblings(alloc: AllocRecord, failed: string): void {
    for (const [name, state] of Object.entries(alloc.TaskStates)) {
      if (name === failed || state.State === "dead") continue;
      pushEvent(state, "Sibling Task Failed", `Task's sibling "${failed}" failed`);
      pushEvent(state, "Killing", "Sent interrupt");
      const running = this.tasks.get(taskKey(alloc, name));
      if (running === undefined) markDead(state, false);
      else ((running.intent = "stop"), killGroup(running.process, "SIGKILL"));
    }
  }

  /** RestartPolicy first (in place), then fail the alloc and reschedule per ReschedulePolicy. */
  private onUnexpectedExit(alloc: AllocRecord, task: Json, allocDir: string): void {
    const group = groupOf(alloc);
    const restart = (group.RestartPolicy as Json | undefined) ?? {};
    const taskState = alloc.TaskStates[String(task.Name)]!;
    if (taskState.Restarts < Number(restart.Attempts ?? 2)) {
      pushEvent(taskState, "Restarting", "Task restarting in place");
      this.state.touchAlloc(alloc);
      return this.restartTask(alloc, task, allocDir, Math.min(this.options.maxRescheduleDelayMs, Number(restart.Delay ?? 0) / NS_PER_MS));
    }
    pushEvent(taskState, "Not Restarting", "Exceeded allowed attempts");
    markDead(taskState, true);
    this.failSiblings(alloc, String(task.Name));
    this.finish(alloc, "failed");
    const reschedule = (group.ReschedulePolicy as Json | undefined) ?? {};
    const attempts = alloc.RescheduleTracker?.Events.length ?? 0;
    if (reschedule.Unlimited !== true && attempts >= Number(reschedule.Attempts ?? 0)) return;
    const delayMs = Math.min(this.options.maxRescheduleDelayMs, Number(reschedule.Delay ?? 0) / NS_PER_MS);
    this.later(delayMs, () => this.replace(alloc));
  }

  private restartTask(alloc: AllocRecord, task: Json, allocDir: string, delayMs: number): void {
    this.later(delayMs, () => {
      if (alloc.DesiredStatus !== "run") return;
      const taskState = alloc.TaskStates[String(task.Name)]!;
      taskState.Restarts += 1;
      taskState.LastRestart = new Date().toISOString();
      taskState.State = "pending";
      this.state.touchAlloc(alloc);
      this.startTask(alloc, task, allocDir);
    });
  }

  /** Lost and failed are final: the siblings a failed task kills exit later and must not make it complete. */
  private finish(alloc: AllocRecord, status: "complete" | "failed"): void {
    if (alloc.ClientStatus === "lost" || alloc.ClientStatus === "failed") return;
    alloc.ClientStatus = status;
    alloc.ClientDescription = status === "complete" ? "All tasks have completed" : "Failed tasks";
    this.state.touchAlloc(alloc);
  }

  /** Returns whether any process was signalled; KillTimeout later escalates a stop's SIGINT to SIGKILL. */
  private killTasks(alloc: AllocRecord, intent: RunningTask["intent"], signal: NodeJS.Signals): boolean {
    let any = false;
    for (const name of Object.keys(alloc.TaskStates)) {
      const task = this.tasks.get(taskKey(alloc, name));
      if (task === undefined) continue;
      any = true;
      if (intent !== undefined) task.intent = intent;
      killGroup(task.process, signal);
      if (signal === "SIGINT") {
        const jobTask = ((alloc.Job.TaskGroups as Json[]).flatMap((g) => g.Tasks as Json[]).find((t) => t.Name === name) ?? {}) as Json;
        this.later(Number(jobTask.KillTimeout ?? 5e9) / NS_PER_MS, () => killGroup(task.process, "SIGKILL"));
      }
    }
    return any;
  }

  private later(delayMs: number, run: () => unknown): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) Promise.resolve(run()).catch((error: unknown) => log.error({ err: error }, "fake scheduler step failed"));
    }, delayMs);
    this.timers.add(timer);
  }
}

function taskKey(alloc: AllocRecord, task: string): string {
  return `${alloc.ID}/${task}`;
}

function groupOf(alloc: AllocRecord): Json {
  return ((alloc.Job.TaskGroups as Json[]).find((g) => g.Name === alloc.TaskGroup) ?? {}) as Json;
}
