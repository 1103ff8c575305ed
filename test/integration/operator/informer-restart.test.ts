import assert from "node:assert/strict";
import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { CoreV1Api, KubeConfig, makeInformer, type V1ConfigMap } from "@kubernetes/client-node";
import { SupervisedInformer } from "../../../src/operator/runtime/informer.ts";
import { clusterEnv, kubectl } from "../../support/cluster.ts";
import { waitFor } from "./harness.ts";

const namespace = `informer-${process.pid}`;
before(() => kubectl(["create", "namespace", namespace]));
after(() => kubectl(["delete", "namespace", namespace, "--wait=false"]));

/** A TCP relay in front of the apiserver whose open connections the test can cut (the watch sees ECONNRESET). */
async function relay(target: URL) {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(a);
      a.pipe(b);
      a.on("error", () => b.destroy());
      a.on("close", () => (sockets.delete(a), b.destroy()));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut: () => {
      const open = sockets.size;
      for (const socket of sockets) socket.resetAndDestroy();
      return open;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test("the supervisor restarts a watch that stopped on a connection reset, and the cache sees objects created after it", async () => {
  const admin = new KubeConfig();
  admin.loadFromFile(clusterEnv().kubeconfig);
  const proxy = await relay(new URL(admin.getCurrentCluster()!.server));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: admin.clusters.map((c) => (c.name === admin.getCurrentCluster()!.name ? { ...c, server: proxy.url } : c)),
    users: admin.users,
    contexts: admin.contexts,
    currentContext: admin.currentContext,
  });
  const core = kc.makeApiClient(CoreV1Api);
  const source = makeInformer<V1ConfigMap>(kc, `/api/v1/namespaces/${namespace}/configmaps`, () =>
    core.listNamespacedConfigMap({ namespace }),
  );
  let restarts = 0;
  let errors = 0;
  source.on("error", () => errors++);
  const seen = new Set<string>();
  const informer = new SupervisedInformer<V1ConfigMap>({
    resource: "configmaps",
    informer: source,
    minBackoffMs: 100,
    maxBackoffMs: 400,
    onChange: (cm) => void seen.add(cm.metadata?.name ?? ""),
    onRestart: () => restarts++,
  });
  try {
    await informer.start();
    kubectl(["-n", namespace, "create", "configmap", "before"]);
    await waitFor(() => seen.has("before"), 10_000, "the first watch event");

    assert.ok(proxy.cut() > 0, "the watch connection ran through the relay");
    await waitFor(() => errors > 0, 10_000, "client-node reporting the broken watch");
    await waitFor(() => restarts > 0, 10_000, "the supervisor restarting the informer");

    kubectl(["-n", namespace, "create", "configmap", "after"]);
    await waitFor(() => seen.has("after") && informer.get("after", namespace) !== undefined, 15_000, "an event on the restarted watch");
    assert.ok(informer.get("before", namespace), "the cache kept what it had");
  } finally {
    await informer.stop();
    await proxy.close();
  }
});
