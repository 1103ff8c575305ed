import { join } from "node:path";
import type { SandboxPoolSpec } from "../api/index.ts";
import type { SandboxBackend } from "../backends/types.ts";
import type { ClusterClient } from "./client.ts";
import type { BackendFactory } from "./sandboxpool/runtimes.ts";

/**
 * Builds a pool's backend from its spec, reading credentials from Secrets in the pool's namespace. Each backend
 * module is imported only when a pool uses it, so a cluster with local pools never loads the Modal SDK.
 */
export function backendFactory(client: ClusterClient, dataDir: string): BackendFactory {
  const secret = async (namespace: string, name: string): Promise<Record<string, string>> => {
    const data = await client.readSecret(namespace, name);
    if (!data) throw new Error(`Secret ${namespace}/${name} not found`);
    return data;
  };
  return async (poolKey: string, namespace: string, spec: SandboxPoolSpec): Promise<SandboxBackend> => {
    if (spec.backend === "local") {
      const { LocalBackend } = await import("../backends/local/backend.ts");
      return LocalBackend.open({ rootDir: spec.local?.rootDir ?? join(dataDir, "sandboxes") });
    }
    if (spec.backend === "modal") {
      const modal = spec.modal;
      const { ModalBackend } = await import("../backends/modal/backend.ts");
      const creds = modal?.credentialsSecretRef ? await secret(namespace, modal.credentialsSecretRef.name) : {};
      // The SDK reads its control-plane URL from the environment only.
      if (modal?.serverURL) process.env.MODAL_SERVER_URL = modal.serverURL;
      return new ModalBackend({
        appName: modal?.appName ?? "hermes-rollouts",
        ...(modal?.environment ? { environment: modal.environment } : {}),
        maxConcurrentCreates: spec.maxConcurrentCreates,
        ...(creds.MODAL_TOKEN_ID ? { tokenId: creds.MODAL_TOKEN_ID } : {}),
        ...(creds.MODAL_TOKEN_SECRET ? { tokenSecret: creds.MODAL_TOKEN_SECRET } : {}),
      });
    }
    const nomad = spec.nomad;
    if (!nomad) throw new Error(`pool ${poolKey}: spec.nomad is required for backend nomad`);
    const { NomadBackend } = await import("../backends/nomad/backend.ts");
    const token = nomad.tokenSecretRef ? (await secret(namespace, nomad.tokenSecretRef.name))[nomad.tokenSecretRef.key] : undefined;
    const tls = nomad.tlsSecretRef ? await secret(namespace, nomad.tlsSecretRef.name) : {};
    return new NomadBackend({
      address: nomad.address,
      namespace: nomad.namespace,
      datacenters: nomad.datacenters,
      driver: nomad.driver,
      ...(nomad.region ? { region: nomad.region } : {}),
      ...(token ? { token } : {}),
      ...(tls["ca.crt"] ? { caCert: tls["ca.crt"] } : {}),
      ...(tls["tls.crt"] ? { clientCert: tls["tls.crt"] } : {}),
      ...(tls["tls.key"] ? { clientKey: tls["tls.key"] } : {}),
    });
  };
}
