import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  allocationAddress,
  currentAllocation,
  incarnationOf,
  placementFailure,
  schedulerPhase,
} from "../../../src/backends/nomad/allocations.ts";
import { compileFilter } from "../../../src/testbeds/fake-nomad/filter.ts";
import { buildSandboxJob, isAlwaysPulled, poolJobPrefix, sandboxJobId, sandboxVariablePath } from "../../../src/backends/nomad/job.ts";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import { allocationStubSchema, evaluationSchema, type AllocationStub } from "../../../src/backends/nomad/schemas.ts";

const template = {
  pool: "team/pool-a",
  image: "img:1",
  slots: 4,
  cpu: 0.5,
  memoryMiB: 512,
  lifetimeSeconds: 3600,
  idleTimeoutSeconds: 0,
  env: { A: "1" },
  templateHash: "abc",
};

test("job IDs are deterministic, pool-prefixed and distinct for look-alike pools", () => {
  assert.equal(sandboxJobId("team/pool-a", "sb-1"), sandboxJobId("team/pool-a", "sb-1"));
  assert.ok(sandboxJobId("team/pool-a", "sb-1").startsWith(poolJobPrefix("team/pool-a")));
  assert.match(poolJobPrefix("team/pool-a"), /^hr-team-pool-a-[0-9a-f]{8}-$/);
  assert.notEqual(poolJobPrefix("a-b/c"), poolJobPrefix("a/b-c"));
  assert.throws(() => sandboxJobId("p", "bad name"));
});

test("job IDs make valid Variable paths: a dot in the name (Kubernetes pool names) becomes ~, and the longest fits", () => {
  const validVariablePath = /^[a-zA-Z0-9\-_~/]{1,128}$/; // nomad/structs/variables.go
  assert.equal(sandboxJobId("p", "my.pool-abcde-123456"), `${poolJobPrefix("p")}my~pool-abcde-123456`);
  assert.notEqual(sandboxJobId("p", "a.b"), sandboxJobId("p", "a-b"));
  assert.match(sandboxVariablePath(sandboxJobId("x".repeat(300), "n".repeat(63))), validVariablePath);
});

test("spec.nomad.driver exec is refused with the reason (its chroot leaves out the sandbox server)", () => {
  const result = validateSandboxPoolSpec({ backend: "nomad", nomad: { address: "http://n:4646", driver: "exec" } });
  assert.equal(result.ok, false);
  assert.match(
    result.ok ? "" : result.errors.join("\n"),
    /spec\.nomad\.driver: .*exec is not supported: its chroot leaves out hermes-rollouts/,
  );
});

test("raw_exec job: one alloc, dynamic http port, no deployments, the token from a Variable's template, Meta for rebuild", () => {
  const job = buildSandboxJob("sb-1", template, {
    driver: "raw_exec",
    datacenters: ["dc1"],
    tokenVariable: true,
    launcher: ["/usr/bin/node", "/app/bin/hermes-rollouts.js"],
  });
  const group = job.TaskGroups[0]!;
  const task = group.Tasks[0]!;
  assert.equal(group.Count, 1);
  assert.equal(group.Update.MaxParallel, 0);
  assert.deepEqual(group.Networks, [{ Mode: "host", DynamicPorts: [{ Label: "http" }] }]);
  assert.equal(task.Config.command, "/usr/bin/node");
  assert.deepEqual(task.Config.args, [
    "/app/bin/hermes-rollouts.js",
    "sandbox-server",
    "--port",
    "${NOMAD_PORT_http}",
    "--host",
    "${NOMAD_IP_http}",
    "--slots",
    "4",
    "--data-dir",
    "${NOMAD_ALLOC_DIR}/data",
    "--token-file",
    "${NOMAD_SECRETS_DIR}/sandbox-token",
  ]);
  assert.deepEqual(task.Env, { A: "1" });
  assert.deepEqual(task.Templates, [
    {
      EmbeddedTmpl: `{{ with nomadVar "nomad/jobs/${job.ID}" }}{{ .sandbox_token }}{{ end }}`,
      DestPath: "secrets/sandbox-token",
      ChangeMode: "noop",
      Perms: "0644",
    },
  ]);
  assert.deepEqual(job.Meta, {
    managed_by: "hermes-rollouts",
    hermes_pool: "team/pool-a",
    hermes_sandbox: "sb-1",
    hermes_template_hash: "abc",
    hermes_slots: "4",
    hermes_lifetime_seconds: "3600",
  });
  assert.deepEqual(task.Resources, { CPU: 500, MemoryMB: 512 });
});

/**
 * The container's argv as Nomad's docker driver and the docker engine build it. Nomad (hashicorp/nomad
 * drivers/docker/driver.go, createContainerConfig): `Entrypoint = config.entrypoint`; `Cmd = [command, ...args]`
 * when `command` is set, else `args`. Docker (moby/moby daemon/commit.go, merge): with no Entrypoint from the
 * caller, the image's ENTRYPOINT stays and its CMD fills an empty Cmd.
 */
function containerArgv(config: Record<string, unknown>, image: { entrypoint: string[]; cmd: string[] }): string[] {
  const args = (config.args as string[] | undefined) ?? [];
  const cmd = typeof config.command === "string" && config.command !== "" ? [config.command, ...args] : args;
  const entrypoint = (config.entrypoint as string[] | undefined) ?? [];
  if (entrypoint.length > 0) return [...entrypoint, ...cmd];
  return [...image.entrypoint, ...(cmd.length > 0 ? cmd : image.cmd)];
}

/** ENTRYPOINT and CMD of the project's own image, read from its Dockerfile (exec form). */
function dockerfileImage(): { entrypoint: string[]; cmd: string[] } {
  const dockerfile = readFileSync(new URL("../../../Dockerfile", import.meta.url), "utf8");
  const exec = (instruction: string): string[] =>
    JSON.parse(new RegExp(`^${instruction} (\\[.*\\])$`, "m").exec(dockerfile)![1]!) as string[];
  return { entrypoint: exec("ENTRYPOINT"), cmd: exec("CMD") };
}

test("docker job: the container runs the image's entrypoint with `sandbox-server ...`, on the mapped port", () => {
  const job = buildSandboxJob("sb-1", template, { driver: "docker", datacenters: ["*"], launcher: [], tokenVariable: true });
  const task = job.TaskGroups[0]!.Tasks[0]!;
  assert.deepEqual(job.TaskGroups[0]!.Networks[0]!.DynamicPorts, [{ Label: "http", To: 8080 }]);
  assert.equal(task.Config.image, "img:1");
  assert.deepEqual(task.Config.ports, ["http"]);
  assert.equal(task.Config.force_pull, false);
  const argv = containerArgv(task.Config, dockerfileImage());
  assert.deepEqual(argv.slice(0, 7), ["node", "/app/bin/hermes-rollouts.js", "sandbox-server", "--port", "8080", "--host", "0.0.0.0"]);
  // NOMAD_SECRETS_DIR is /secrets inside a container (client/allocrunner/taskrunner/task_dir_hook.go), where the template renders.
  assert.deepEqual(argv.slice(-2), ["--token-file", "${NOMAD_SECRETS_DIR}/sandbox-token"]);
});

test("the reschedule policy is bounded and passes structs.go's ReschedulePolicy.Validate rules", () => {
  const policy = buildSandboxJob("sb-1", template, { driver: "raw_exec", datacenters: ["*"], launcher: ["node"] }).TaskGroups[0]!
    .ReschedulePolicy;
  assert.equal(policy.Unlimited, false);
  assert.ok(policy.Attempts > 0 && policy.Attempts <= 5);
  assert.ok(policy.Delay >= 5e9, "Delay cannot be less than 5s");
  assert.ok(policy.Interval >= 15e9, "Interval cannot be less than 15s");
  assert.ok(policy.Attempts * policy.Delay <= policy.Interval, "constant delay: the attempts fit in the interval");
});

test("images Nomad's docker driver pulls on every start: tag latest, or no tag", () => {
  assert.equal(isAlwaysPulled("python"), true);
  assert.equal(isAlwaysPulled("ghcr.io/x/hermes:latest"), true);
  assert.equal(isAlwaysPulled("localhost:5000/hermes"), true);
  assert.equal(isAlwaysPulled("localhost:5000/hermes:1.2"), false);
  assert.equal(isAlwaysPulled("hermes@sha256:abc"), false);
});

function alloc(fields: Partial<Record<string, unknown>>): AllocationStub {
  return allocationStubSchema.parse({
    ID: "a1",
    Name: "j.sandbox[0]",
    JobID: "j",
    TaskGroup: "sandbox",
    DesiredStatus: "run",
    ClientStatus: "running",
    CreateIndex: 1,
    ModifyIndex: 1,
    ...fields,
  });
}

test("the address comes from Shared.Ports, else from Shared.Networks", () => {
  assert.equal(
    allocationAddress(alloc({ AllocatedResources: { Shared: { Ports: [{ Label: "http", Value: 23456, HostIP: "10.0.0.5" }] } } })),
    "http://10.0.0.5:23456",
  );
  assert.equal(
    allocationAddress(
      alloc({ AllocatedResources: { Shared: { Networks: [{ IP: "10.0.0.6", DynamicPorts: [{ Label: "http", Value: 2 }] }] } } }),
    ),
    "http://10.0.0.6:2",
  );
  assert.equal(allocationAddress(alloc({ AllocatedResources: null })), undefined);
});

test("the current allocation is the newest live one; restarts change the incarnation", () => {
  const old = alloc({ ID: "old", ClientStatus: "lost", DesiredStatus: "stop", CreateIndex: 5 });
  const fresh = alloc({ ID: "new", ClientStatus: "pending", CreateIndex: 9 });
  assert.equal(currentAllocation([old, fresh])?.ID, "new");
  assert.equal(currentAllocation([old])?.ID, "old");
  const restarted = alloc({ TaskStates: { "sandbox-server": { State: "running", Restarts: 2 } } });
  assert.equal(incarnationOf(restarted), "a1#2");
});

const live = { Stop: false, Status: "running" };

test("scheduler phase: running task is ready (pending health), lost is starting, stopped is terminated", () => {
  const running = alloc({ TaskStates: { "sandbox-server": { State: "running" } } });
  assert.equal(schedulerPhase(live, running).phase, "ready");
  assert.equal(schedulerPhase({ Stop: true, Status: "dead" }, running).phase, "terminated");
  assert.equal(schedulerPhase(live, alloc({ ClientStatus: "lost", DesiredStatus: "stop" })).phase, "starting");
  assert.deepEqual(schedulerPhase(live, undefined), { phase: "starting", message: "no allocation placed yet" });
});

test("a Driver Failure is seen wherever it is among the events since the task last started", () => {
  // The order real Nomad's task runner emits: the failure, then the restart policy's verdict.
  const events = [
    { Type: "Received", DisplayMessage: "Task received by client" },
    { Type: "Driver Failure", DisplayMessage: "failed to create container: no such image", DriverError: "no such image" },
    { Type: "Restarting", DisplayMessage: "Task restarting in 1s" },
    { Type: "Driver Failure", DisplayMessage: "failed to create container: no such image", DriverError: "no such image" },
    { Type: "Not Restarting", DisplayMessage: 'Exceeded allowed attempts 1 in interval 5m0s and mode is "fail"' },
  ];
  const stillRestarting = alloc({
    ClientStatus: "pending",
    TaskStates: { "sandbox-server": { State: "pending", Events: events.slice(0, 3) } },
  });
  assert.deepEqual(schedulerPhase(live, stillRestarting), {
    phase: "failed",
    message: "allocation a1 pending: Driver Failure: failed to create container: no such image",
  });
  const failed = alloc({ ClientStatus: "failed", TaskStates: { "sandbox-server": { State: "dead", Failed: true, Events: events } } });
  assert.equal(schedulerPhase({ Stop: false, Status: "pending" }, failed).phase, "failed");
  const recovered = alloc({
    TaskStates: { "sandbox-server": { State: "running", Events: [...events.slice(0, 3), { Type: "Started", DisplayMessage: "" }] } },
  });
  assert.equal(schedulerPhase(live, recovered).phase, "ready", "a failure before the last start is history");
});

test("a failed allocation (restart policy exhausted) is failed, naming its last event", () => {
  const crashed = alloc({
    ClientStatus: "failed",
    TaskStates: {
      "sandbox-server": {
        State: "dead",
        Events: [
          { Type: "Terminated", DisplayMessage: "Exit Code: 1" },
          { Type: "Not Restarting", DisplayMessage: "Exceeded allowed attempts" },
        ],
      },
    },
  });
  assert.deepEqual(schedulerPhase({ Stop: false, Status: "pending" }, crashed), {
    phase: "failed",
    message: "allocation a1 failed: Not Restarting: Exceeded allowed attempts",
  });
});

test("an unplaceable job: the evaluation's FailedTGAllocs is the reason; filtered everywhere is failed, exhausted waits", () => {
  const evaluation = (ID: string, CreateIndex: number, metric?: Record<string, unknown>) =>
    evaluationSchema.parse({ ID, JobID: "j", Status: "complete", CreateIndex, FailedTGAllocs: metric ? { sandbox: metric } : null });
  const missingDriver = placementFailure([
    evaluation("e1-placed-0", 5),
    evaluation("e2-failed-0", 9, { NodesEvaluated: 1, NodesFiltered: 1, ConstraintFiltered: { "missing drivers": 1 } }),
  ]);
  assert.deepEqual(missingDriver, {
    message: 'evaluation e2-faile FailedTGAllocs: group "sandbox" not placed: 1 of 1 nodes filtered, 0 exhausted: missing drivers (1)',
    permanent: true,
  });
  assert.equal(schedulerPhase(live, undefined, missingDriver).phase, "failed");
  const full = placementFailure([evaluation("e3", 3, { NodesEvaluated: 2, NodesExhausted: 2, DimensionExhausted: { memory: 2 } })]);
  assert.equal(full?.permanent, false);
  assert.equal(schedulerPhase(live, undefined, full).phase, "starting");
  assert.equal(placementFailure([evaluation("e4", 3)]), undefined);
});

test("the fake's filter subset evaluates the expressions our client sends", () => {
  const job = { ID: "hr-x-1", Meta: { hermes_pool: "a/b" }, Tags: ["x"] };
  assert.equal(compileFilter('JobID matches "^hr-"')({ JobID: "hr-1" }), true);
  assert.equal(compileFilter('Meta.hermes_pool == "a/b" and ID != "z"')(job), true);
  assert.equal(compileFilter('not (Meta.hermes_pool == "a/b") or "x" in Tags')(job), true);
  assert.equal(compileFilter("Meta.missing is empty")(job), true);
  assert.throws(() => compileFilter("ID ==="));
});
