import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  allocationAddress,
  currentAllocation,
  incarnationOf,
  placementFailure,
  schedulerPhase,
} from "../../../src/backends/nomad/allocations.ts";
import { compileFilter } from "../../../src/testbeds/fake-nomad/filter.ts";
import {
  INJECTED_SERVER_DIR,
  buildSandboxJob,
  isAlwaysPulled,
  poolJobPrefix,
  sandboxJobId,
  sandboxVariablePath,
  type NomadTask,
} from "../../../src/backends/nomad/job.ts";
import { injectServer } from "../../../src/backends/sandbox-server/inject.ts";
import { groupValidationErrors } from "../../../src/testbeds/fake-nomad/validate.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
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
    "--isolation",
    "bwrap",
    "--network",
    "none",
    "--slot-env",
    "A",
    "--token-file",
    "${NOMAD_SECRETS_DIR}/sandbox-token",
  ]);
  // The pool's env reaches the server's process; --slot-env names what its slots get (values stay out of argv).
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
    hermes_image: "img:1",
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

/** A plain image's ENTRYPOINT and CMD (python:3.11-slim: none, and `python3`): the job must not depend on them. */
const plainImage = { entrypoint: [], cmd: ["python3"] };

test("docker job: a prestart task injects the server, the pool's image runs it as `sandbox-server ...` on the mapped port", () => {
  const job = buildSandboxJob("sb-1", template, {
    driver: "docker",
    datacenters: ["*"],
    launcher: [],
    tokenVariable: true,
    serverImage: "ghcr.io/x/hermes-rollouts:1.2",
  });
  const group = job.TaskGroups[0]!;
  assert.deepEqual(
    group.Tasks.map((t) => [t.Name, t.Driver, t.Lifecycle]),
    [
      ["inject-server", "docker", { Hook: "prestart", Sidecar: false }],
      ["sandbox-server", "docker", undefined],
    ],
  );
  const [inject, server] = group.Tasks as [NomadTask, NomadTask];
  // The inject task runs in the hermes image, through its own ENTRYPOINT (the CLI).
  assert.equal(inject.Config.image, "ghcr.io/x/hermes-rollouts:1.2");
  assert.deepEqual(containerArgv(inject.Config, dockerfileImage()), [
    "node",
    "/app/bin/hermes-rollouts.js",
    "inject",
    "--to",
    INJECTED_SERVER_DIR,
  ]);
  assert.deepEqual(inject.Templates, [], "the token is rendered for the server task only");
  // The server task runs the pool's image with the injected node and app, whatever the image's own ENTRYPOINT.
  assert.deepEqual(group.Networks[0]!.DynamicPorts, [{ Label: "http", To: 8080 }]);
  assert.equal(server.Config.image, "img:1");
  assert.deepEqual(server.Config.ports, ["http"]);
  assert.equal(server.Config.force_pull, false);
  assert.equal(server.Config.command, undefined);
  for (const image of [plainImage, dockerfileImage()]) {
    const argv = containerArgv(server.Config, image);
    assert.deepEqual(argv.slice(0, 7), [
      "/alloc/data/hermes-server/node",
      "/alloc/data/hermes-server/app/bin/hermes-rollouts.js",
      "sandbox-server",
      "--port",
      "8080",
      "--host",
      "0.0.0.0",
    ]);
    // NOMAD_SECRETS_DIR is /secrets inside a container (client/allocrunner/taskrunner/task_dir_hook.go), where the template renders.
    assert.deepEqual(argv.slice(-2), ["--token-file", "${NOMAD_SECRETS_DIR}/sandbox-token"]);
  }
  assert.equal(server.Templates[0]?.DestPath, "secrets/sandbox-token");
  assert.deepEqual(groupValidationErrors(group as unknown as Record<string, unknown>), [], "valid for structs.go as the fake ports it");
});

test("the injected layout is what the docker job's entrypoint names: <dir>/node and <dir>/app/bin/hermes-rollouts.js", async () => {
  const root = mkdtempSync(join(tmpdir(), "inject-"));
  try {
    const app = join(root, "app-src");
    for (const file of ["package.json", "bin/hermes-rollouts.js", "src/cli/main.ts", "node_modules/dep/index.js", "test/skip.ts"]) {
      mkdirSync(dirname(join(app, file)), { recursive: true });
      writeFileSync(join(app, file), file);
    }
    writeFileSync(join(root, "node-binary"), "ELF", { mode: 0o600 });
    const to = join(root, "alloc/data/hermes-server");
    await injectServer(to, { execPath: join(root, "node-binary"), appRoot: app });
    const job = buildSandboxJob("sb-1", template, { driver: "docker", datacenters: ["*"], launcher: [], serverImage: "h:1" });
    const entrypoint = job.TaskGroups[0]!.Tasks[1]!.Config.entrypoint as string[];
    const inAlloc = (path: string) => join(to, path.slice(INJECTED_SERVER_DIR.length));
    assert.equal(readFileSync(inAlloc(entrypoint[0]!), "utf8"), "ELF");
    assert.equal(statSync(inAlloc(entrypoint[0]!)).mode & 0o777, 0o755, "node is runnable by the image's user");
    assert.equal(readFileSync(inAlloc(entrypoint[1]!), "utf8"), "bin/hermes-rollouts.js");
    assert.deepEqual(readdirSync(join(to, "app")).sort(), ["bin", "node_modules", "package.json", "src"], "no tests copied");
    await injectServer(to, { execPath: join(root, "node-binary"), appRoot: app }); // a restarted task copies over it
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a docker job without a server image is refused naming spec.nomad.serverImage", () => {
  assert.throws(
    () => buildSandboxJob("sb-1", template, { driver: "docker", datacenters: ["*"], launcher: [] }),
    (e: unknown) => isSandboxError(e, "configuration") && /spec\.nomad\.serverImage is required for driver docker/.test(e.message),
  );
});

test("lifecycle validation as structs.go: a known hook, and at least one main task", () => {
  const job = buildSandboxJob("sb-1", template, { driver: "docker", datacenters: ["*"], launcher: [], serverImage: "h:1" });
  const group = job.TaskGroups[0]! as unknown as { Name: string; Tasks: Record<string, unknown>[] };
  group.Tasks[0]!.Lifecycle = { Hook: "prestrat", Sidecar: false };
  group.Tasks[1]!.Lifecycle = { Hook: "", Sidecar: false };
  assert.deepEqual(groupValidationErrors(group), [
    "Task group sandbox validation failed: Task inject-server validation failed: Lifecycle validation failed: invalid hook: prestrat",
    "Task group sandbox validation failed: Task sandbox-server validation failed: Lifecycle validation failed: no lifecycle hook provided",
  ]);
  group.Tasks[1]!.Lifecycle = { Hook: "poststop", Sidecar: true };
  assert.deepEqual(groupValidationErrors(group).slice(0, 1), [
    "Task group sandbox validation failed: Task group sandbox must have at least one main task",
  ]);
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

test("a docker pool's inject task that cannot start or fails: the sandbox is failed, naming that task", () => {
  // The server task waits behind the prestart task; when that fails, the alloc runner kills it (alloc_runner.go).
  const waiting = { State: "dead", Events: [{ Type: "Sibling Task Failed", DisplayMessage: 'Task\'s sibling "inject-server" failed' }] };
  const pullFailed = alloc({
    ClientStatus: "pending",
    TaskStates: {
      "inject-server": {
        State: "pending",
        Events: [{ Type: "Driver Failure", DisplayMessage: "Failed to pull `h:1`: not found", DriverError: "not found" }],
      },
      "sandbox-server": { State: "pending" },
    },
  });
  assert.deepEqual(schedulerPhase(live, pullFailed), {
    phase: "failed",
    message: "allocation a1 pending: task inject-server: Driver Failure: Failed to pull `h:1`: not found",
  });
  const copyFailed = alloc({
    ClientStatus: "failed",
    TaskStates: {
      "inject-server": {
        State: "dead",
        Failed: true,
        Events: [
          { Type: "Terminated", DisplayMessage: "Exit Code: 1" },
          { Type: "Not Restarting", DisplayMessage: "Exceeded allowed attempts" },
        ],
      },
      "sandbox-server": waiting,
    },
  });
  assert.deepEqual(schedulerPhase(live, copyFailed), {
    phase: "failed",
    message: "allocation a1 failed: task inject-server: Not Restarting: Exceeded allowed attempts",
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
