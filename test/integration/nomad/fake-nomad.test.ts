import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { allocationAddress, currentAllocation } from "../../../src/backends/nomad/allocations.ts";
import { NomadBackend } from "../../../src/backends/nomad/backend.ts";
import { NomadClient } from "../../../src/backends/nomad/client.ts";
import { NomadApiError } from "../../../src/backends/nomad/errors.ts";
import { startFakeNomad, type FakeNomad } from "../../../src/testbeds/fake-nomad/server.ts";
import { buildSandboxJob, sandboxJobId, sandboxVariablePath, type NomadJob, type NomadTask } from "../../../src/backends/nomad/job.ts";
import { SandboxServerClient } from "../../../src/backends/sandbox-server/client.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { FakeClock } from "../../../src/base/clock.ts";

const bin = fileURLToPath(new URL("../../../bin/hermes-rollouts.js", import.meta.url));
const template = (pool: string): SandboxTemplate => ({
  pool,
  image: "host",
  slots: 2,
  cpu: 0.5,
  memoryMiB: 256,
  lifetimeSeconds: 600,
  idleTimeoutSeconds: 0,
  templateHash: "v1",
});

let fake: FakeNomad;
let client: NomadClient;
before(async () => {
  fake = await startFakeNomad({ aclToken: "acl-secret", namespaces: ["sbx"] });
  client = new NomadClient({ address: fake.url, token: "acl-secret", namespace: "sbx", env: {} });
});
after(async () => {
  await client.close();
  await fake.close();
});

async function runningAlloc(jobId: string, timeoutMs = 10_000) {
  let index = 0;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answer = await client.listAllocations({ filter: `JobID == "${jobId}"` }, { index, waitMs: 1_000 });
    index = answer.index;
    const alloc = currentAllocation(answer.data);
    if (alloc?.ClientStatus === "running") return alloc;
  }
  throw new Error(`no running allocation for ${jobId}`);
}

test("register → running allocation → the sandbox server answers /health and exec at the listed address", async () => {
  const job = buildSandboxJob("direct", template("it/direct"), {
    driver: "raw_exec",
    datacenters: ["*"],
    tokenVariable: true,
    launcher: [process.execPath, bin],
  });
  // The token reaches the server through the variable and the task's template only.
  await client.putVariable(sandboxVariablePath(job.ID), { sandbox_token: "tok-from-variable" });
  const registered = await client.registerJob(job, { enforceIndex: 0 });
  assert.ok(registered.JobModifyIndex > 0);
  await assert.rejects(
    client.registerJob(job, { enforceIndex: 0 }),
    (e: unknown) => e instanceof NomadApiError && /job already exists/.test(e.body),
  );
  const alloc = await runningAlloc(job.ID);
  assert.equal(alloc.Name, `${job.ID}.sandbox[0]`);
  const stubs = await client.jobAllocations(job.ID);
  assert.equal(stubs.data[0]?.AllocatedResources, undefined, "job allocation stubs carry no resources, as in Nomad");
  const address = allocationAddress(alloc);
  assert.match(address ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
  const server = new SandboxServerClient({ baseUrl: address!, token: "tok-from-variable" });
  let health;
  for (let i = 0; i < 100 && health === undefined; i++)
    health = await server.health(1_000).catch(() => new Promise((r) => setTimeout(r, 50)).then(() => undefined));
  assert.equal(health?.status, "ok");
  assert.equal(health?.slots, 2);
  const result = await server.exec({ slot: 1, command: "echo ok", timeoutMs: 5_000 });
  assert.equal(result.stdout, "ok\n");
  const read = await client.readJob(job.ID);
  assert.equal(read.data.Status, "running");
  assert.equal(read.data.Meta?.hermes_pool, "it/direct");
  await client.deregisterJob(job.ID, { purge: true });
  assert.equal(await client.findJob(job.ID), undefined, "purge makes the job 404");
  // The allocation stops when the deregister evaluation runs, not in the DELETE itself.
  await waitUntil(async () => (await client.readAllocation(alloc.ID)).DesiredStatus === "stop");
  await waitUntil(async () => (await client.readAllocation(alloc.ID)).ClientStatus === "complete");
  const again = await client.deregisterJob(job.ID, { purge: true });
  assert.deepEqual([again.EvalID, again.JobModifyIndex], ["", 0], "deleting a missing job is no error, as in Nomad");
});

test("register validates the restart and reschedule policies and resources as structs.go does (500, multierror text)", async () => {
  const job = buildSandboxJob("invalid", template("it/invalid"), { driver: "raw_exec", datacenters: ["*"], launcher: ["node"] });
  const group = job.TaskGroups[0]!;
  group.RestartPolicy = { ...group.RestartPolicy, Interval: 1e9 };
  group.ReschedulePolicy = { ...group.ReschedulePolicy, Unlimited: true };
  group.Tasks[0]!.Resources = { CPU: 0, MemoryMB: 64 };
  await assert.rejects(
    client.registerJob(job),
    (e: unknown) =>
      e instanceof NomadApiError &&
      e.status === 500 &&
      e.body.startsWith("3 errors occurred:\n") &&
      /Interval can not be less than 5s/.test(e.body) &&
      /Unlimited cannot also be set to true/.test(e.body) &&
      /minimum CPU value is 1; got 0/.test(e.body),
  );
  assert.equal(await client.findJob(job.ID), undefined);
});

test("a driver no node has: nothing placed, FailedTGAllocs 'missing drivers', a blocked eval and Summary.Queued", async () => {
  const job = buildSandboxJob("nodocker", template("it/nodocker"), {
    driver: "docker",
    datacenters: ["*"],
    launcher: [],
    serverImage: "hermes:1",
  });
  const registered = await client.registerJob(job);
  let evaluations = await client.jobEvaluations(job.ID);
  await waitUntil(async () =>
    (evaluations = await client.jobEvaluations(job.ID)).some((e) => e.ID === registered.EvalID && e.Status === "complete"),
  );
  const placing = evaluations.find((e) => e.ID === registered.EvalID)!;
  assert.deepEqual(placing.FailedTGAllocs?.sandbox?.ConstraintFiltered, { "missing drivers": 1 });
  assert.equal(evaluations.find((e) => e.ID === placing.BlockedEval)?.Status, "blocked");
  assert.deepEqual((await client.jobAllocations(job.ID)).data, []);
  const summary = await fetch(`${fake.url}/v1/job/${job.ID}/summary?namespace=sbx`, { headers: { "x-nomad-token": "acl-secret" } });
  assert.equal(((await summary.json()) as { Summary: { sandbox: { Queued: number } } }).Summary.sandbox.Queued, 1);
  await client.deregisterJob(job.ID, { purge: true });
});

test("a command that cannot start: Driver Failure, the restart policy's Restarting, then Not Restarting and failed", async () => {
  const job = buildSandboxJob("nocommand", template("it/nocommand"), {
    driver: "raw_exec",
    datacenters: ["*"],
    launcher: ["/nonexistent/node"],
  });
  await client.registerJob(job);
  let types: string[] = [];
  await waitUntil(async () => {
    const alloc = currentAllocation((await client.jobAllocations(job.ID)).data);
    types = alloc?.TaskStates?.["sandbox-server"]?.Events?.map((e) => e.Type) ?? [];
    return alloc?.ClientStatus === "failed";
  });
  const withoutSetup = types.filter((type) => type !== "Task Setup");
  assert.deepEqual(withoutSetup.slice(-4), ["Driver Failure", "Restarting", "Driver Failure", "Not Restarting"]);
  await client.deregisterJob(job.ID, { purge: true });
});

test("stopping a raw_exec task sends SIGINT (the executor's default kill signal)", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "fake-nomad-sig-"));
  const own = await startFakeNomad({ dataDir });
  const ownClient = new NomadClient({ address: own.url, env: {} });
  try {
    const job = buildSandboxJob("sig", template("it/sig"), { driver: "raw_exec", datacenters: ["*"], launcher: ["/bin/sh"] });
    const script =
      'trap "echo INT > $NOMAD_ALLOC_DIR/signal; exit 0" INT; trap "echo TERM > $NOMAD_ALLOC_DIR/signal; exit 0" TERM; ' +
      "echo up > $NOMAD_ALLOC_DIR/up; while :; do sleep 0.05; done";
    job.TaskGroups[0]!.Tasks[0]!.Config = { command: "/bin/sh", args: ["-c", script] };
    await ownClient.registerJob(job);
    await waitUntil(async () => existsSync(join(dataDir, "allocs")) && readdirSync(join(dataDir, "allocs")).length === 1);
    const allocDir = join(dataDir, "allocs", readdirSync(join(dataDir, "allocs"))[0]!, "alloc");
    await waitUntil(async () => existsSync(join(allocDir, "up")));
    await ownClient.deregisterJob(job.ID);
    await waitUntil(async () => existsSync(join(allocDir, "signal")));
    assert.equal(readFileSync(join(allocDir, "signal"), "utf8"), "INT\n");
  } finally {
    await ownClient.close();
    await own.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("a blocking query parks until a write, and an idle one returns after wait with the same index", async () => {
  // Its own fake: processes stopping in other tests would bump the shared index while this one idles.
  const quiet = await startFakeNomad();
  const quietClient = new NomadClient({ address: quiet.url, env: {} });
  try {
    const { index } = await quietClient.listJobs();
    const idleStart = Date.now();
    const idle = await quietClient.listJobs({}, { index, waitMs: 300 });
    assert.equal(idle.index, index);
    assert.ok(Date.now() - idleStart >= 290, "an idle blocking query waits");
    const started = Date.now();
    const woken = quietClient.listJobs({ prefix: "hr-" }, { index, waitMs: 20_000 });
    setTimeout(
      () =>
        void quietClient.registerJob(
          buildSandboxJob("w", template("wake"), { driver: "docker", datacenters: ["*"], launcher: [], serverImage: "hermes:1" }),
        ),
      150,
    );
    const answer = await woken;
    assert.ok(answer.index > index);
    assert.equal(answer.data.length, 1);
    assert.ok(Date.now() - started < 5_000, "woken by the write, not by the wait");
  } finally {
    await quietClient.close();
    await quiet.close();
  }
});

test("ACL: no token and a wrong token are 403 with Nomad's text; the right one passes; leader needs none", async () => {
  const anonymous = new NomadClient({ address: fake.url, env: {} });
  const wrong = new NomadClient({ address: fake.url, token: "nope", env: {} });
  await assert.rejects(
    anonymous.listJobs(),
    (e: unknown) => e instanceof NomadApiError && e.status === 403 && e.body === "Permission denied" && e.kind === "configuration",
  );
  await assert.rejects(
    wrong.listJobs(),
    (e: unknown) => e instanceof NomadApiError && e.status === 403 && e.body === "ACL token not found",
  );
  assert.equal(await anonymous.leader(), "127.0.0.1:4647");
  // An unknown namespace: reads find nothing in it; a register is refused (500, as the RPC's validation error).
  const nowhere = new NomadClient({ address: fake.url, token: "acl-secret", namespace: "nope", env: {} });
  assert.deepEqual((await nowhere.listJobs()).data, []);
  assert.deepEqual((await nowhere.listAllocations()).data, []);
  const job = buildSandboxJob("ns", template("it/ns"), { driver: "raw_exec", datacenters: ["*"], launcher: ["node"] });
  await assert.rejects(
    nowhere.registerJob(job),
    (e: unknown) =>
      e instanceof NomadApiError && e.status === 500 && /nonexistent namespace "nope"/.test(e.body) && isSandboxError(e, "configuration"),
  );
  await nowhere.close();
  await anonymous.close();
  await wrong.close();
});

test("alloc lost: exec is gone, list shows the new allocation starting then ready, create re-pins the new address", async () => {
  const backend = new NomadBackend({ address: fake.url, token: "acl-secret", namespace: "sbx", sandboxToken: "tok", env: {} });
  try {
    const sandbox = await backend.create("lose", template("it/lose"));
    await backend.writeFile(sandbox, 0, "marker", "before");
    const before = await runningAlloc(sandbox.id);
    const replacement = await fake.loseAllocation(before.ID);
    assert.ok(replacement !== undefined && replacement.ID !== before.ID);
    assert.equal(replacement.PreviousAllocation, before.ID);
    await assert.rejects(backend.exec(sandbox, { slot: 0, command: "true", timeoutMs: 5_000 }), (e: unknown) => isSandboxError(e, "gone"));
    const lost = await client.readAllocation(before.ID);
    assert.equal(lost.ClientStatus, "lost");
    assert.equal(lost.NextAllocation, replacement.ID);
    const again = await backend.create("lose", template("it/lose"));
    assert.equal(again.phase, "ready");
    const after = await runningAlloc(sandbox.id);
    assert.equal(after.ID, replacement.ID);
    assert.notEqual(allocationAddress(after), allocationAddress(before), "a reschedule moves the port");
    const result = await backend.exec(again, { slot: 0, command: "ls", timeoutMs: 5_000 });
    assert.equal(result.stdout, "", "the new allocation's workspace is fresh");
    assert.deepEqual(
      (await backend.list("it/lose")).map((s) => s.phase),
      ["ready"],
    );
    await backend.terminate(again);
    await backend.terminate(again);
    assert.deepEqual(await backend.list("it/lose"), []);
  } finally {
    await backend.close();
  }
});

test("a sandbox past the template's lifetime is listed as terminated, so the pool replaces it", async () => {
  const clock = new FakeClock(Date.now());
  const backend = new NomadBackend({
    address: fake.url,
    token: "acl-secret",
    namespace: "sbx",
    sandboxToken: "tok",
    env: {},
    clock,
  });
  try {
    const sandbox = await backend.create("aged", template("it/aged"));
    clock.advance(599_000);
    assert.deepEqual(
      (await backend.list("it/aged")).map((s) => s.phase),
      ["ready"],
    );
    clock.advance(2_000);
    const [aged] = await backend.list("it/aged");
    assert.equal(aged?.phase, "terminated");
    assert.match(aged?.message ?? "", /lifetime of 600 s/);
    await backend.terminate(sandbox);
  } finally {
    await backend.close();
  }
});

test("restarted task: same allocation and port, Restarts + 1, and the old incarnation is gone", async () => {
  const backend = new NomadBackend({ address: fake.url, token: "acl-secret", namespace: "sbx", sandboxToken: "tok", env: {} });
  try {
    const sandbox = await backend.create("restart", template("it/restart"));
    const before = await runningAlloc(sandbox.id);
    await client.restartAllocation(before.ID, "sandbox-server");
    let after = before;
    for (let i = 0; i < 100 && (after.TaskStates?.["sandbox-server"]?.Restarts ?? 0) === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = currentAllocation((await client.listAllocations({ filter: `JobID == "${sandbox.id}"` })).data)!;
    }
    assert.equal(after.ID, before.ID);
    assert.equal(after.TaskStates?.["sandbox-server"]?.Restarts, 1);
    assert.equal(allocationAddress(after), allocationAddress(before));
    await assert.rejects(backend.health(sandbox), (e: unknown) => isSandboxError(e, "gone") && /restarted/.test(e.message));
    const again = await backend.create("restart", template("it/restart"));
    assert.equal((await backend.exec(again, { slot: 1, command: "echo back", timeoutMs: 5_000 })).stdout, "back\n");
    await backend.terminate(again);
  } finally {
    await backend.close();
  }
});

test("a crashed task is restarted in place by the restart policy, then rescheduled when attempts run out", async () => {
  const job = buildSandboxJob("crash", template("it/crash"), { driver: "raw_exec", datacenters: ["*"], launcher: [process.execPath, bin] });
  await client.registerJob(job);
  const first = await runningAlloc(job.ID);
  fake.crashAllocation(first.ID);
  await waitUntil(
    async () =>
      (await client.readAllocation(first.ID)).TaskStates?.["sandbox-server"]?.Restarts === 1 &&
      (await client.readAllocation(first.ID)).ClientStatus === "running",
  );
  await waitUntil(async () => (await client.readAllocation(first.ID)).TaskStates?.["sandbox-server"]?.State === "running");
  fake.crashAllocation(first.ID);
  await waitUntil(async () => (await client.readAllocation(first.ID)).NextAllocation !== "");
  const failed = await client.readAllocation(first.ID);
  assert.equal(failed.ClientStatus, "failed");
  const second = await runningAlloc(job.ID);
  assert.equal(second.ID, failed.NextAllocation);
  await client.deregisterJob(job.ID, { purge: false });
  const stopped = await client.readJob(job.ID);
  assert.equal(stopped.data.Stop, true);
  await waitUntil(async () => (await client.readAllocation(second.ID)).ClientStatus === "complete");
  await client.deregisterJob(job.ID, { purge: true });
});

test("a backend that met Nomad down recovers once Nomad answers (its first failed sync is not kept)", async () => {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const backend = new NomadBackend({ address: `http://127.0.0.1:${port}`, env: {}, watchWaitMs: 1_000 });
  // The first call that reads the allocation watch (here an exec on a sandbox a restarted pool remembers) fails.
  const remembered = { id: sandboxJobId("it/late", "late-0"), name: "late-0" };
  await assert.rejects(backend.exec(remembered, { slot: 0, command: "true", timeoutMs: 1_000 }), (e: unknown) =>
    isSandboxError(e, "transient"),
  );
  const late = await startFakeNomad({ port });
  try {
    assert.deepEqual(await backend.list("it/late"), []);
  } finally {
    await backend.close();
    await late.close();
  }
});

test("the fake-nomad CLI serves the API on the given port", async () => {
  const child = spawn(process.execPath, [bin, "fake-nomad", "--port", "0"], { stdio: ["ignore", "pipe", "ignore"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        const match = /fake Nomad on (http:\/\/\S+)/.exec(chunk.toString());
        if (match?.[1] !== undefined) resolve(match[1]);
      });
      child.once("exit", () => reject(new Error("fake-nomad exited")));
    });
    const cli = new NomadClient({ address: url, env: {} });
    assert.equal(await cli.leader(), "127.0.0.1:4647");
    assert.deepEqual((await cli.listJobs()).data, []);
    await cli.close();
  } finally {
    child.kill("SIGTERM");
  }
});

/** A raw_exec job of a prestart task and a main task, both `sh -c`; the main one fails unless the prestart one ran first. */
function lifecycleJob(name: string, prestartScript: string): NomadJob {
  const job = buildSandboxJob(name, template(`it/${name}`), { driver: "raw_exec", datacenters: ["*"], launcher: ["sh"] });
  const group = job.TaskGroups[0]!;
  group.ReschedulePolicy = { ...group.ReschedulePolicy, Attempts: 0 }; // one allocation to look at
  const main = group.Tasks[0]!;
  main.Config = { command: "sh", args: ["-c", 'test -f "$NOMAD_ALLOC_DIR/prestart-done" || exit 3; exec sleep 60'] };
  group.Tasks = [
    { ...main, Name: "prepare", Config: { command: "sh", args: ["-c", prestartScript] }, Lifecycle: { Hook: "prestart", Sidecar: false } },
    main,
  ];
  return job;
}

test("a prestart task runs first: exit 0 lets the main task start, a failure keeps it from ever starting", async () => {
  const ok = lifecycleJob("prestart-ok", 'sleep 0.3; touch "$NOMAD_ALLOC_DIR/prestart-done"');
  await client.registerJob(ok);
  const running = await client.readAllocation((await runningAlloc(ok.ID)).ID);
  await waitUntil(async () => (await client.readAllocation(running.ID)).TaskStates?.["sandbox-server"]?.State === "running");
  const states = (await client.readAllocation(running.ID)).TaskStates!;
  assert.deepEqual([states.prepare!.State, states.prepare!.Failed], ["dead", false]);
  assert.deepEqual(
    states.prepare!.Events!.map((e) => `${e.Type}: ${e.DisplayMessage}`).slice(-2),
    ["Started: Task started by client", "Terminated: Exit Code: 0"],
    "done, not restarted (restarts.go: no restart on success unless a sidecar)",
  );
  assert.equal(states["sandbox-server"]!.Restarts, 0, "the main task found the prestart task's file at its first start");
  await client.deregisterJob(ok.ID, { purge: true });

  const failing = lifecycleJob("prestart-fails", "exit 1");
  await client.registerJob(failing);
  let alloc = currentAllocation((await client.jobAllocations(failing.ID)).data);
  await waitUntil(async () => (alloc = currentAllocation((await client.jobAllocations(failing.ID)).data))?.ClientStatus === "failed");
  const failed = (await client.readAllocation(alloc!.ID)).TaskStates!;
  assert.deepEqual([failed.prepare!.State, failed.prepare!.Failed, failed.prepare!.Restarts], ["dead", true, 1]);
  assert.equal(failed.prepare!.Events!.at(-1)?.Type, "Not Restarting");
  const main = failed["sandbox-server"]!;
  assert.deepEqual(
    main.Events!.map((e) => `${e.Type}: ${e.DisplayMessage}`),
    ['Sibling Task Failed: Task\'s sibling "prepare" failed', "Killing: Sent interrupt"],
    "never set up nor started",
  );
  assert.equal(main.State, "dead");
  assert.equal(main.StartedAt, null);
  await client.deregisterJob(failing.ID, { purge: true });
});

test("register validates lifecycle blocks as structs.go does; the fake refuses hooks it does not run", async () => {
  const invalid = lifecycleJob("badhook", "true");
  invalid.TaskGroups[0]!.Tasks[0]!.Lifecycle = { Hook: "prestrat" } as unknown as NomadTask["Lifecycle"];
  await assert.rejects(
    client.registerJob(invalid),
    (e: unknown) =>
      e instanceof NomadApiError &&
      e.status === 500 &&
      /Task prepare validation failed: Lifecycle validation failed: invalid hook: prestrat/.test(e.body),
  );
  const sidecar = lifecycleJob("sidecar", "true");
  sidecar.TaskGroups[0]!.Tasks[0]!.Lifecycle = { Hook: "prestart", Sidecar: true } as unknown as NomadTask["Lifecycle"];
  await assert.rejects(
    client.registerJob(sidecar),
    (e: unknown) => e instanceof NomadApiError && e.status === 400 && /fake-nomad runs only prestart tasks with sidecar false/.test(e.body),
  );
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
