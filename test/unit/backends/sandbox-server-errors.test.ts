import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SandboxError } from "../../../src/base/errors.ts";
import { SlotHost } from "../../../src/backends/local/slot-host.ts";
import { createSandboxServer } from "../../../src/backends/sandbox-server/server.ts";
import type { ExecRequest, ExecResult } from "../../../src/backends/types.ts";

/** Slot 0 runs commands; slot 1 is out of disk; slot 2 hits a bug. */
class FailingHost extends SlotHost {
  override exec(request: ExecRequest): Promise<ExecResult> {
    if (request.slot === 1) return Promise.reject(new SandboxError("capacity", "disk full"));
    if (request.slot === 2) return Promise.reject(new Error("unexpected"));
    return super.exec(request);
  }
}

let root = "";
let host: FailingHost;
let server: Server;
let url = "";

before(async () => {
  root = await mkdtemp(join(tmpdir(), "sandbox-server-errors-"));
  host = new FailingHost({ root, slots: 3, isolation: "none" });
  await host.prepare();
  server = createSandboxServer({ host, token: "t" });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.close();
  await host.close(); // its slot cgroups, where this host lets it make them
  await rm(root, { recursive: true, force: true });
});

async function post(path: string, body: string, token = "t"): Promise<[number, unknown]> {
  const response = await fetch(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body });
  return [response.status, await response.json()];
}

const exec = (slot: number) => JSON.stringify({ slot, command: "true", timeoutMs: 5000 });

test("every error answer names its catalogue code beside the message, with the status it had before", async () => {
  assert.deepEqual(await post("/exec", exec(0), "wrong"), [401, { error: "missing or wrong bearer token", code: "HR_UNAUTHORIZED" }]);
  assert.deepEqual(await post("/nowhere", "{}"), [404, { error: "no route POST /nowhere", code: "HR_NOT_FOUND" }]);
  assert.deepEqual(await post("/exec", "{"), [400, { error: "body is not JSON", code: "HR_BAD_REQUEST" }]);
  assert.deepEqual(await post("/exec", exec(7)), [404, { error: "unknown slot 7 (server has 3)", code: "HR_NOT_FOUND" }]);
  const [outsideStatus, outside] = await post("/files/read", JSON.stringify({ slot: 0, path: "../../etc/passwd" }));
  assert.equal(outsideStatus, 403);
  assert.deepEqual([(outside as { code: string }).code, (outside as { kind: string }).kind], ["HR_SANDBOX_CONFIGURATION", "configuration"]);
  assert.deepEqual(await post("/exec", exec(1)), [507, { error: "disk full", code: "HR_SANDBOX_CAPACITY", kind: "capacity" }]);
  assert.deepEqual(await post("/exec", exec(2)), [500, { error: "unexpected", code: "HR_INTERNAL" }]);
});

test("a failed entry of a batch carries its code too", async () => {
  const [status, entries] = await post("/batch", `[${exec(0)},${exec(1)}]`);
  assert.equal(status, 200);
  assert.equal((entries as Array<{ exitCode?: number }>)[0]!.exitCode, 0);
  assert.deepEqual((entries as unknown[])[1], { error: "disk full", code: "HR_SANDBOX_CAPACITY", kind: "capacity" });
});

test("a body over 64 MiB is a 413 with its code, and the server keeps serving", async () => {
  const response = await fetch(`${url}/files/write`, {
    method: "POST",
    headers: { authorization: "Bearer t" },
    body: Buffer.alloc(65 * 1024 * 1024, 0x20),
  });
  assert.deepEqual([response.status, ((await response.json()) as { code: string }).code], [413, "HR_BODY_TOO_LARGE"]);
  assert.deepEqual((await post("/exec", exec(0)))[0], 200);
});

test("a server with neither a token nor `insecure` is never made", () => {
  const host = new SlotHost({ root, slots: 1, isolation: "none" });
  assert.throws(() => createSandboxServer({ host }), /no token/);
  assert.throws(() => createSandboxServer({ host, token: "" }), /empty/);
  createSandboxServer({ host, insecure: true }).close();
});
