import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { V1Secret } from "@kubernetes/client-node";
import { API_VERSION, type SandboxPoolSpec } from "../api/index.ts";
import type { SandboxBackend } from "../backends/types.ts";
import {
  isolationPolicy,
  kubernetesBackendFromSpec,
  modalBackendFromSpec,
  nomadBackendFromSpec,
  type BackendEnvironment,
} from "../backends/factory.ts";
import type { SandboxPodApi } from "../backends/kubernetes/backend.ts";
import { sandboxNetworkPolicy, type SandboxIngress } from "../backends/kubernetes/network-policy.ts";
import type { ClusterClient } from "./client.ts";
import type { BackendFactory, PoolIdentity } from "./sandboxpool/runtimes.ts";

export const SANDBOX_TOKEN_KEY = "token";
export const sandboxTokenSecretName = (pool: string) => `${pool}-sandbox-token`;

/** The pool's sandbox-server token, owned by the pool so it goes when the pool does. */
export function sandboxTokenSecret(pool: PoolIdentity, token: string): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: sandboxTokenSecretName(pool.name),
      namespace: pool.namespace,
      ownerReferences: [{ apiVersion: API_VERSION, kind: "SandboxPool", name: pool.name, uid: pool.uid, controller: true }],
    },
    type: "Opaque",
    stringData: { [SANDBOX_TOKEN_KEY]: token },
  };
}

/** The pod calls of the kubernetes backend, in one namespace, over the controller's cluster client. */
export function sandboxPodApi(client: ClusterClient, namespace: string): SandboxPodApi {
  return {
    create: (pod) => client.createPod(namespace, pod),
    read: (name) => client.readPod(namespace, name),
    list: (labelSelector) => client.listPods(namespace, labelSelector),
    delete: (name) => client.deletePod(namespace, name),
  };
}

/**
 * Builds a pool's backend from its spec with the shared factories (backends/factory.ts), after reading credentials from Secrets in
 * the pool's namespace; the controller's own environment fills what they leave unset. Backend modules load only
 * when a pool uses them (no Modal SDK for local pools). With `sandboxIngress`, each kubernetes pool gets a NetworkPolicy
 * that lets only those pods (the controller's) reach its sandbox pods.
 */
export function backendFactory(
  client: ClusterClient,
  dataDir: string,
  environment: BackendEnvironment = {},
  sandboxIngress?: SandboxIngress,
): BackendFactory {
  const secret = async (namespace: string, name: string): Promise<Record<string, string>> => {
    const data = await client.readSecret(namespace, name);
    if (!data) throw new Error(`Secret ${namespace}/${name} not found`);
    return data;
  };
  /**
   * The token the pool's sandbox servers require, kept in a Secret so a restarted controller still reaches the
   * servers it started; made on first use. A create that loses a race reads the winner's token.
   */
  const sandboxToken = async (pool: PoolIdentity): Promise<string> => {
    const name = sandboxTokenSecretName(pool.name);
    const stored = async () => (await client.readSecret(pool.namespace, name))?.[SANDBOX_TOKEN_KEY];
    const existing = await stored();
    if (existing) return existing;
    const token = randomBytes(32).toString("base64url");
    try {
      await client.createSecret(pool.namespace, sandboxTokenSecret(pool, token));
      return token;
    } catch (error) {
      const winner = await stored();
      if (winner) return winner;
      throw new Error(`Secret ${pool.namespace}/${name} (key ${SANDBOX_TOKEN_KEY}) holds no sandbox token and cannot be created`, {
        cause: error,
      });
    }
  };
  return async (pool: PoolIdentity, spec: SandboxPoolSpec): Promise<SandboxBackend> => {
    const { namespace } = pool;
    if (spec.backend === "local") {
      const { LocalBackend } = await import("../backends/local/backend.ts");
      return LocalBackend.open({ rootDir: spec.local?.rootDir ?? join(dataDir, "sandboxes"), isolation: isolationPolicy(spec) });
    }
    if (spec.backend === "modal") {
      const ref = spec.modal?.credentialsSecretRef;
      const creds = ref ? await secret(namespace, ref.name) : {};
      return modalBackendFromSpec(
        spec,
        {
          ...(creds.MODAL_TOKEN_ID ? { tokenId: creds.MODAL_TOKEN_ID } : {}),
          ...(creds.MODAL_TOKEN_SECRET ? { tokenSecret: creds.MODAL_TOKEN_SECRET } : {}),
        },
        environment,
      );
    }
    if (spec.backend === "kubernetes") {
      const owner = { apiVersion: API_VERSION, kind: "SandboxPool", name: pool.name, uid: pool.uid };
      // Before the first pod: a sandbox server is never reachable from more than the controller (where policies are enforced).
      if (sandboxIngress) await client.ensureNetworkPolicy(namespace, sandboxNetworkPolicy(pool.key, { namespace, owner }, sandboxIngress));
      return kubernetesBackendFromSpec(
        spec,
        {
          pods: sandboxPodApi(client, namespace),
          namespace,
          owner,
          tokenSecret: { name: sandboxTokenSecretName(pool.name), key: SANDBOX_TOKEN_KEY },
          sandboxToken: await sandboxToken(pool),
        },
        environment,
      );
    }
    const nomad = spec.nomad;
    if (!nomad) throw new Error(`pool ${pool.key}: spec.nomad is required for backend nomad`);
    const token = nomad.tokenSecretRef ? (await secret(namespace, nomad.tokenSecretRef.name))[nomad.tokenSecretRef.key] : undefined;
    const tls = nomad.tlsSecretRef ? await secret(namespace, nomad.tlsSecretRef.name) : {};
    return nomadBackendFromSpec(
      spec,
      {
        ...(token ? { token } : {}),
        ...(tls["ca.crt"] ? { caCert: tls["ca.crt"] } : {}),
        ...(tls["tls.crt"] ? { clientCert: tls["tls.crt"] } : {}),
        ...(tls["tls.key"] ? { clientKey: tls["tls.key"] } : {}),
        sandboxToken: await sandboxToken(pool),
      },
      environment,
    );
  };
}
