import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { kubernetesBlock } from "../../../src/api/index.ts";
import { KubernetesBackend, type SandboxPodApi } from "../../../src/backends/kubernetes/backend.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { isSandboxError } from "../../../src/base/errors.ts";

const template: SandboxTemplate = {
  pool: "team/swe",
  image: "img",
  slots: 2,
  cpu: 0.1,
  memoryMiB: 128,
  lifetimeSeconds: 600,
  idleTimeoutSeconds: 60,
  templateHash: "h1",
};

/**
 * Pods in memory, as the apiserver keeps them: a create of an existing name is a 409, a delete sets deletionTimestamp
 * (the pod stays through its grace period), `status` says what the kubelet reports (ready at once by default).
 */
function fakePods(status: V1Pod["status"] = { phase: "Running", podIP: "127.0.0.1", conditions: [{ type: "Ready", status: "True" }] }) {
  const pods = new Map<string, V1Pod>();
  let uid = 0;
  const api: SandboxPodApi = {
    async create(pod) {
      const name = pod.metadata!.name!;
      if (pods.has(name)) throw Object.assign(new Error("exists"), { code: 409 });
      pods.set(name, { ...pod, metadata: { ...pod.metadata, uid: `u${++uid}` }, status });
    },
    async read(name) {
      return pods.get(name);
    },
    async list() {
      return [...pods.values()];
    },
    async delete(name) {
      const pod = pods.get(name);
      if (pod) pod.metadata!.deletionTimestamp = new Date();
    },
  };
  return { api, pods };
}

const isolation = { mode: "bwrap", network: "none" } as const;
const backendOver = (api: SandboxPodApi) =>
  new KubernetesBackend({
    pods: api,
    sandboxToken: "t",
    pollMs: 1,
    readyTimeoutMs: 200,
    pod: {
      namespace: "team",
      settings: kubernetesBlock.parse({}),
      serverImage: "ghcr.io/x/hermes-rollouts:1",
      isolation,
      tokenSecret: { name: "swe-sandbox-token", key: "token" },
    },
  });

test("a pod this backend deleted is not listed through its grace period; one deleted by someone else is, as terminated", async () => {
  const { api, pods } = fakePods();
  const backend = backendOver(api);
  const mine = await backend.create("swe-a", template);
  await backend.create("swe-b", template);
  assert.deepEqual(
    (await backend.list("team/swe")).map((s) => `${s.name} ${s.phase}`),
    ["swe-a ready", "swe-b ready"],
  );
  await backend.terminate(mine);
  assert.ok(pods.get("swe-a")?.metadata?.deletionTimestamp, "still on the apiserver, terminating");
  await api.delete("swe-b"); // kubectl delete pod
  assert.deepEqual(
    (await backend.list("team/swe")).map((s) => `${s.name} ${s.phase}`),
    ["swe-b terminated"],
  );
});

test("create is idempotent by name; a pod the kubelet cannot pull ends the create with the reason, and stays", async () => {
  const { api } = fakePods();
  const backend = backendOver(api);
  const first = await backend.create("swe-a", template);
  assert.equal((await backend.create("swe-a", template)).id, first.id);

  const pulling = fakePods({
    phase: "Pending",
    containerStatuses: [
      {
        name: "sandbox",
        image: "img",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: "ErrImagePull", message: "not found" } },
      },
    ],
  });
  const stuck = backendOver(pulling.api);
  await assert.rejects(
    stuck.create("swe-x", template),
    (error: unknown) => isSandboxError(error, "configuration") && /ErrImagePull: not found/.test(String(error)),
  );
  const [listed] = await stuck.list("team/swe");
  assert.deepEqual([listed?.phase, listed?.stuck], ["starting", "ImagePullFailed"]);
});

test("a pod evicted under a restarted controller is 'gone' to its first call, so the pool replaces the sandbox", async () => {
  const { api, pods } = fakePods();
  const sandbox = await backendOver(api).create("swe-a", template);
  pods.get("swe-a")!.status = { phase: "Failed", reason: "Evicted", message: "The node was low on resource: memory." };
  const restarted = backendOver(api); // nothing pinned: the first call reads the pod
  await assert.rejects(
    restarted.exec(sandbox, { slot: 0, command: "true", timeoutMs: 1000 }),
    (error: unknown) => isSandboxError(error, "gone") && /Evicted: The node was low on resource: memory/.test(String(error)),
  );
});

test("a pool with neither serverCommand nor a server image: create fails as configuration (not retried), no pod made", async () => {
  const { api, pods } = fakePods();
  const backend = new KubernetesBackend({
    pods: api,
    sandboxToken: "t",
    pod: { namespace: "team", settings: kubernetesBlock.parse({}), isolation, tokenSecret: { name: "swe-sandbox-token", key: "token" } },
  });
  await assert.rejects(
    backend.create("swe-1", template),
    (e: unknown) => isSandboxError(e, "configuration") && /spec\.kubernetes\.serverImage is required/.test(e.message),
  );
  assert.equal(pods.size, 0);
});
