import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { NomadBackend } from "../../../src/backends/nomad/backend.ts";
import { NomadClient } from "../../../src/backends/nomad/client.ts";
import { NomadApiError } from "../../../src/backends/nomad/errors.ts";
import { buildSandboxJob, sandboxJobId, sandboxVariablePath } from "../../../src/backends/nomad/job.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { startFakeNomad, type FakeNomad } from "../../../src/testbeds/fake-nomad/server.ts";

// The sandbox token travels as a Nomad Variable that the task's template renders to a file: never in the job.

const template = (pool: string): SandboxTemplate => ({
  pool,
  image: "host",
  slots: 1,
  cpu: 0.5,
  memoryMiB: 256,
  lifetimeSeconds: 600,
  idleTimeoutSeconds: 0,
  templateHash: "v1",
});

let fake: FakeNomad;
let client: NomadClient;
before(async () => {
  fake = await startFakeNomad({ namespaces: ["sbx"] });
  client = new NomadClient({ address: fake.url, namespace: "sbx", env: {} });
});
after(async () => {
  await client.close();
  await fake.close();
});

async function readVariable(path: string): Promise<{ status: number; body: string }> {
  const answer = await fetch(`${fake.url}/v1/var/${path}?namespace=sbx`);
  return { status: answer.status, body: await answer.text() };
}

test("variables as Nomad has them: PUT then GET, paths checked (reserved nomad/ tree, no dots), DELETE 204 even when missing", async () => {
  await client.putVariable("nomad/jobs/some-job", { k: "v" });
  const read = await readVariable("nomad/jobs/some-job");
  assert.equal(read.status, 200);
  assert.deepEqual((JSON.parse(read.body) as { Namespace: string; Items: object }).Items, { k: "v" });
  assert.equal(JSON.parse(read.body).Namespace, "sbx");
  const listed = (await (await fetch(`${fake.url}/v1/vars?prefix=nomad/jobs/&namespace=sbx`)).json()) as { Path: string; Items?: object }[];
  assert.deepEqual(
    listed.map((v) => [v.Path, v.Items]),
    [["nomad/jobs/some-job", undefined]],
    "the listing has metadata only",
  );
  for (const [path, message] of [
    ["nomad/other", /only paths at "nomad\/jobs" or "nomad\/job-templates" and below are valid/],
    ["nomad/jobs/a.b", /invalid path "nomad\/jobs\/a\.b"/],
  ] as const) {
    await assert.rejects(
      client.putVariable(path, { k: "v" }),
      (e: unknown) => e instanceof NomadApiError && e.status === 400 && message.test(e.body),
    );
  }
  await assert.rejects(
    client.putVariable("empty", {}),
    (e: unknown) => e instanceof NomadApiError && e.status === 400 && /missing required Items/.test(e.body),
  );
  await client.deleteVariable("nomad/jobs/some-job");
  assert.deepEqual(await readVariable("nomad/jobs/some-job"), { status: 404, body: "variable not found" });
  await client.deleteVariable("nomad/jobs/some-job");
});

test("a template destination outside the allocation is refused at register, as structs.go Template.Validate does", async () => {
  const job = buildSandboxJob("escape", template("it/escape"), {
    driver: "raw_exec",
    datacenters: ["*"],
    launcher: ["node"],
    tokenVariable: true,
  });
  job.TaskGroups[0]!.Tasks[0]!.Templates[0]!.DestPath = "../../../etc/token";
  await assert.rejects(
    client.registerJob(job),
    (e: unknown) =>
      e instanceof NomadApiError &&
      e.status === 500 &&
      /Template 1 validation failed: destination escapes allocation directory/.test(e.body),
  );
});

test("the backend: the registered job holds no token, the server the fake starts has it, terminate deletes the variable", async () => {
  const token = "secret-token-3f9a1c";
  const backend = new NomadBackend({ address: fake.url, namespace: "sbx", env: {}, sandboxToken: token, readyTimeoutMs: 30_000 });
  try {
    const info = await backend.create("tok", template("it/token"));
    const jobId = sandboxJobId("it/token", "tok");
    const registered = fake.state.getJob("sbx", jobId);
    assert.ok(registered !== undefined);
    assert.ok(!JSON.stringify(registered).includes(token), "the token is nowhere in the submitted job");
    assert.equal(JSON.parse((await readVariable(sandboxVariablePath(jobId))).body).Items.sandbox_token, token);
    // Ready means the server answered /health with this token; exec proves it again.
    assert.equal((await backend.exec(info, { slot: 0, command: "echo in", timeoutMs: 5_000 })).stdout, "in\n");
    await backend.terminate(info);
    assert.equal((await readVariable(sandboxVariablePath(jobId))).status, 404);
  } finally {
    await backend.close();
  }
});

test("a register Nomad refuses leaves no variable behind", async () => {
  const backend = new NomadBackend({ address: fake.url, namespace: "nope", env: {}, sandboxToken: "t", readyTimeoutMs: 5_000 });
  try {
    await assert.rejects(backend.create("refused", template("it/refused")), /nonexistent namespace "nope"/);
    const answer = await fetch(`${fake.url}/v1/var/${sandboxVariablePath(sandboxJobId("it/refused", "refused"))}?namespace=nope`);
    assert.equal(answer.status, 404);
  } finally {
    await backend.close();
  }
});
