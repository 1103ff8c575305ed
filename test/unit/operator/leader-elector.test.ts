import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { FakeClock } from "../../../src/base/clock.ts";
import { defaultTimings, LeaderElector } from "../../../src/operator/runtime/leader.ts";

/** A coordination.k8s.io Lease endpoint in memory; `hang` makes it stop answering, as an unreachable apiserver does. */
async function leaseServer() {
  let lease: Record<string, unknown> | undefined;
  let version = 0;
  const state = { hang: false };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (state.hang) return;
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.method === "GET") return lease ? reply(200, lease) : reply(404, { kind: "Status", code: 404 });
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { metadata: Record<string, unknown> };
    lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
    reply(req.method === "POST" ? 201 : 200, lease);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
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
