import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { AlreadyExistsError, NotFoundError, type App, type Image, type ModalClient } from "modal";
import type { MockModal } from "../../../src/testbeds/mock-modal/server.ts";
import { mockWithClient } from "./support.ts";
import { withModalServerUrl } from "../../support/modal.ts";

// The real modal@0.11.1 SDK against the mock, checking the behaviour modal-sdk.md describes (V2 path by default).
describe("mock-modal with the real SDK", () => {
  let mock: MockModal;
  let modal: ModalClient;
  let app: App;
  let image: Image;

  before(async () => {
    ({ mock, modal } = await mockWithClient());
    app = await modal.apps.fromName("sdk-test", { createIfMissing: true });
    image = modal.images.fromRegistry("debian:12-slim");
  });

  after(async () => {
    modal.close();
    await mock.close();
  });

  test("a missing app without createIfMissing is NotFoundError", async () => {
    await assert.rejects(modal.apps.fromName("no-such-app"), NotFoundError);
  });

  test("names are unique among running sandboxes only", async () => {
    const first = await modal.sandboxes.create(app, image, { name: "unique-1", timeoutMs: 60_000 });
    await assert.rejects(modal.sandboxes.create(app, image, { name: "unique-1", timeoutMs: 60_000 }), AlreadyExistsError);
    assert.equal((await modal.sandboxes.fromName("sdk-test", "unique-1")).sandboxId, first.sandboxId);
    await first.terminate();
    await assert.rejects(modal.sandboxes.fromName("sdk-test", "unique-1"), NotFoundError);
    const second = await modal.sandboxes.create(app, image, { name: "unique-1", timeoutMs: 60_000 });
    assert.notEqual(second.sandboxId, first.sandboxId);
    await second.terminate();
  });

  test("list filters running sandboxes by all tags, newest first", async () => {
    const a = await modal.sandboxes.create(app, image, { tags: { team: "x", kind: "a" }, timeoutMs: 60_000 });
    const b = await modal.sandboxes.create(app, image, { tags: { team: "x", kind: "b" }, timeoutMs: 60_000 });
    const c = await modal.sandboxes.create(app, image, { tags: { team: "x", kind: "a" }, timeoutMs: 60_000 });
    const ids = async (tags: Record<string, string>) => {
      const found: string[] = [];
      for await (const sandbox of modal.sandboxes.list({ appId: app.appId, tags })) found.push(sandbox.sandboxId);
      return found;
    };
    assert.deepEqual(await ids({ team: "x" }), [c.sandboxId, b.sandboxId, a.sandboxId]);
    assert.deepEqual(await ids({ team: "x", kind: "a" }), [c.sandboxId, a.sandboxId]);
    assert.deepEqual(await ids({ team: "y" }), []);
    await c.terminate();
    assert.deepEqual(await ids({ team: "x", kind: "a" }), [a.sandboxId]);
    assert.deepEqual(await a.getTags(), { team: "x", kind: "a" });
    await a.terminate();
    await b.terminate();
  });

  test("terminate gives 137; exec on a terminated sandbox fails", async () => {
    const sandbox = await modal.sandboxes.create(app, image, { timeoutMs: 60_000 });
    assert.equal(await sandbox.poll(), null);
    await sandbox.terminate();
    assert.equal(await sandbox.wait(), 137);
    await assert.rejects(async () => (await sandbox.exec(["true"])).wait());
  });

  test("a sandbox past its lifetime reports 124", async () => {
    const sandbox = await modal.sandboxes.create(app, image, { timeoutMs: 1000 });
    const started = Date.now();
    assert.equal(await sandbox.wait(), 124);
    assert.ok(Date.now() - started >= 800, "ended at its lifetime, not before");
  });

  test("exec: env, workdir (mapped into the sandbox root), stdin, exit code and timeout", async () => {
    const sandbox = await modal.sandboxes.create(app, image, { timeoutMs: 60_000, workdir: "/job", env: { FROM_SANDBOX: "s" } });
    const mkdir = await sandbox.exec(["mkdir", "-p", "sub"], { workdir: "/job" });
    assert.equal(await mkdir.wait(), 0);
    const proc = await sandbox.exec(["bash", "-c", 'echo "$FROM_SANDBOX $FROM_EXEC"; basename "$PWD"; cat; echo oops >&2; exit 3'], {
      workdir: "/job/sub",
      env: { FROM_EXEC: "e" },
    });
    const writer = proc.stdin.getWriter();
    await writer.write("from stdin\n");
    await writer.close();
    assert.equal(await proc.wait(), 3);
    assert.equal(await proc.stdout.readText(), "s e\nsub\nfrom stdin\n");
    assert.equal(await proc.stderr.readText(), "oops\n");

    const started = Date.now();
    const slow = await sandbox.exec(["sleep", "30"], { timeoutMs: 1000 });
    assert.equal(await slow.wait(), 137);
    assert.ok(Date.now() - started < 10_000);
    await sandbox.terminate();
  });

  test("the V1 path (MODAL_SANDBOX_V2=0) works end to end", async () => {
    // The SDK takes the sandbox path only from MODAL_SANDBOX_V2, read when the client is built.
    const { ModalClient } = await import("modal");
    process.env.MODAL_SANDBOX_V2 = "0";
    const v1 = await withModalServerUrl(mock.url, () => new ModalClient({ tokenId: "ak-v1", tokenSecret: "as-v1", logLevel: "error" }));
    delete process.env.MODAL_SANDBOX_V2;
    const v1App = await v1.apps.fromName("sdk-test-v1", { createIfMissing: true });
    const sandbox = await v1.sandboxes.create(v1App, v1.images.fromRegistry("debian:12-slim"), {
      name: "v1-box",
      tags: { v: "1" },
      timeoutMs: 60_000,
    });
    assert.match(sandbox.sandboxId, /^sb-[0-9A-Za-z]{22}$/);
    const proc = await sandbox.exec(["echo", "v1 exec"]);
    assert.equal(await proc.wait(), 0);
    assert.equal(await proc.stdout.readText(), "v1 exec\n");
    const listed: string[] = [];
    for await (const found of v1.sandboxes.list({ appId: v1App.appId, tags: { v: "1" } })) listed.push(found.sandboxId);
    assert.deepEqual(listed, [sandbox.sandboxId]);
    await sandbox.terminate();
    assert.equal(await sandbox.wait(), 137);
    await checkEntrypointStdio(v1, v1App);
    assert.ok(mock.faults.callsTo("SandboxGetLogs").length > 0 && mock.faults.callsTo("SandboxStdinWrite").length > 0);
    assert.ok(mock.faults.callsTo("SandboxCreate").length === 2 && mock.faults.callsTo("SandboxWait").length > 0);
    v1.close();
  });

  test("the entrypoint's stdin and stdout (V2 router path)", async () => {
    await checkEntrypointStdio(modal, app);
    assert.ok(mock.faults.callsTo("SandboxStdioReadV2").length > 0 && mock.faults.callsTo("SandboxStdinWriteV2").length > 0);
  });

  test("methods the mock does not implement answer UNIMPLEMENTED", async () => {
    await assert.rejects(modal.volumes.fromName("vol", { createIfMissing: true }), /UNIMPLEMENTED|does not implement/);
  });
});

/** A sandbox whose entrypoint is `tr a-z A-Z`: what goes to its stdin comes back on stdout, then it exits 0. */
async function checkEntrypointStdio(client: ModalClient, app: App): Promise<void> {
  const sandbox = await client.sandboxes.create(app, client.images.fromRegistry("debian:12-slim"), {
    command: ["tr", "a-z", "A-Z"],
    timeoutMs: 60_000,
  });
  const writer = sandbox.stdin.getWriter();
  await writer.write("shout\n");
  await writer.close();
  assert.equal(await sandbox.stdout.readText(), "SHOUT\n");
  assert.equal(await sandbox.wait(), 0);
}
