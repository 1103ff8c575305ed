import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { FakeClock } from "../../../src/base/clock.ts";
import { defaultTimings, LeaderElector } from "../../../src/operator/runtime/leader.ts";
import { generateTlsMaterial } from "../../../src/testbeds/mock-modal/tls.ts";

/**
 * A coordination.k8s.io Lease endpoint in memory; `hang` makes it stop answering, as an unreachable apiserver does.
 * With `tls` it serves HTTPS with that certificate, and the kubeconfig trusts its CA.
 */
async function leaseServer(tls?: { cert: Buffer; key: Buffer; caFile: string }) {
  let lease: Record<string, unknown> | undefined;
  let version = 0;
  const state = { hang: false, requests: 0, connections: 0 };
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    state.requests += 1;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (state.hang) return;
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.method === "GET") return lease ? reply(200, lease) : reply(404, { kind: "Status", code: 404 });
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { metadata: Record<string, unknown> };
    lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
    reply(req.method === "POST" ? 201 : 200, lease);
  };
  const server: Server = tls === undefined ? createServer(handler) : createTlsServer({ cert: tls.cert, key: tls.key }, handler);
  server.on(tls === undefined ? "connection" : "secureConnection", () => (state.connections += 1));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const cluster =
    tls === undefined
      ? { name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }
      : { name: "c", server: `https://127.0.0.1:${port}`, caData: (await readFile(tls.caFile)).toString("base64"), skipTLSVerify: false };
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  const close = () => {
    server.closeAllConnections();
    server.close();
  };
  return { kubeConfig, state, close };
}

test("a leader whose renewal gets no answer stops leading at the renew deadline, before another replica may take over", async () => {
  const { kubeConfig, state, close } = await leaseServer();
  const clock = new FakeClock(1_000_000);
  let stopped = false;
  let started!: () => void;
  const leading = new Promise<void>((resolve) => (started = resolve));
  const elector = new LeaderElector({
    kubeConfig,
    namespace: "ns",
    name: "ctrl",
    identity: "a",
    clock,
    onStartedLeading: () => started(),
    onStoppedLeading: () => (stopped = true),
  });
  elector.start();
  await leading;
  state.hang = true;
  clock.advance(defaultTimings.retryPeriodMs); // the renewal goes out and hangs
  clock.advance(defaultTimings.renewDeadlineMs - defaultTimings.retryPeriodMs);
  await new Promise((resolve) => setImmediate(resolve));
  const stillLeading = elector.isLeader;
  close();
  await elector.stop();
  assert.equal(stopped, true, "onStoppedLeading was called");
  assert.equal(stillLeading, false);
});

test("renewals reuse one TLS connection (client-node alone opens one per request)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hermes-lease-tls-"));
  const { kubeConfig, state, close } = await leaseServer(await generateTlsMaterial(dir, "127.0.0.1"));
  let started!: () => void;
  const leading = new Promise<void>((resolve) => (started = resolve));
  const elector = new LeaderElector({
    kubeConfig,
    namespace: "ns",
    name: "ctrl",
    identity: "a",
    timings: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 20 },
    onStartedLeading: () => started(),
    onStoppedLeading: () => assert.fail("lost the lease"),
  });
  try {
    elector.start();
    await leading;
    while (state.requests < 12) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(state.connections, 1, `${state.requests} requests over ${state.connections} TLS connections`);
  } finally {
    await elector.stop();
    close();
    await rm(dir, { recursive: true, force: true });
  }
});
