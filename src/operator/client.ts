import type { CoreV1Event, KubeConfig, V1NetworkPolicy, V1Pod, V1Secret } from "@kubernetes/client-node";
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, NetworkingV1Api } from "./kube.ts";
import { GROUP, VERSION } from "../api/index.ts";
import type { EventSink } from "./runtime/events.ts";

export type CustomKind = "SandboxPool" | "RolloutJob";
export interface ObjectRef {
  kind: CustomKind;
  namespace: string;
  name: string;
}

const plurals: Record<CustomKind, string> = { SandboxPool: "sandboxpools", RolloutJob: "rolloutjobs" };

/**
 * Every write the reconcilers make, and the few reads that do not come from an informer cache. Reconcilers get
 * this interface, so unit tests pass a recording fake that fails on any write they did not expect.
 */
export interface ClusterClient {
  patchStatus(ref: ObjectRef, status: object): Promise<void>;
  setFinalizers(ref: ObjectRef, finalizers: string[]): Promise<void>;
  deleteObject(ref: ObjectRef): Promise<void>;
  createPod(namespace: string, pod: V1Pod): Promise<void>;
  deletePod(namespace: string, name: string): Promise<void>;
  /** undefined when there is no such pod. */
  readPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  listPods(namespace: string, labelSelector: string): Promise<V1Pod[]>;
  createSecret(namespace: string, secret: V1Secret): Promise<void>;
  /** Creates the policy unless one of that name exists (the pool's own, made on an earlier pass). */
  ensureNetworkPolicy(namespace: string, policy: V1NetworkPolicy): Promise<void>;
  deleteSecret(namespace: string, name: string): Promise<void>;
  readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  readConfigMap(namespace: string, name: string): Promise<Record<string, string> | undefined>;
}

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

function isNotFound(error: unknown): boolean {
  return (error as { code?: number }).code === 404;
}

export function kubeClient(kc: KubeConfig): ClusterClient & EventSink {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const target = (ref: ObjectRef) => ({
    group: GROUP,
    version: VERSION,
    namespace: ref.namespace,
    plural: plurals[ref.kind],
    name: ref.name,
  });
  return {
    async patchStatus(ref, status) {
      await custom.patchNamespacedCustomObjectStatus({ ...target(ref), body: { status } }, mergePatch);
    },
    async setFinalizers(ref, finalizers) {
      await custom.patchNamespacedCustomObject({ ...target(ref), body: { metadata: { finalizers } } }, mergePatch);
    },
    async deleteObject(ref) {
      await custom.deleteNamespacedCustomObject(target(ref)).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
    },
    async createPod(namespace, pod) {
      await core.createNamespacedPod({ namespace, body: pod });
    },
    async deletePod(namespace, name) {
      // Grace period in the body: with a body, the apiserver ignores the query parameter.
      await core.deleteNamespacedPod({ namespace, name, body: { gracePeriodSeconds: 5 } }).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
    },
    async readPod(namespace, name) {
      try {
        return await core.readNamespacedPod({ namespace, name });
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async listPods(namespace, labelSelector) {
      return (await core.listNamespacedPod({ namespace, labelSelector })).items;
    },
    async createSecret(namespace, secret) {
      await core.createNamespacedSecret({ namespace, body: secret });
    },
    async ensureNetworkPolicy(namespace, policy) {
      await networking.createNamespacedNetworkPolicy({ namespace, body: policy }).catch((e: unknown) => {
        if ((e as { code?: number }).code !== 409) throw e;
      });
    },
    async deleteSecret(namespace, name) {
      await core.deleteNamespacedSecret({ namespace, name }).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
    },
    async readSecret(namespace, name) {
      try {
        const secret = await core.readNamespacedSecret({ namespace, name });
        return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async readConfigMap(namespace, name) {
      try {
        return (await core.readNamespacedConfigMap({ namespace, name })).data ?? {};
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async create(namespace: string, event: CoreV1Event) {
      await core.createNamespacedEvent({ namespace, body: event });
    },
    async update(namespace: string, name: string, count: number, lastTimestamp: Date) {
      await core.patchNamespacedEvent({ namespace, name, body: { count, lastTimestamp: lastTimestamp.toISOString() } }, mergePatch);
    },
  };
}
