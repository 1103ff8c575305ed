import { join } from "node:path";
import type { SandboxPoolSpec } from "../api/index.ts";
import type { SandboxBackend } from "../backends/types.ts";
import { modalBackendFromSpec, nomadBackendFromSpec, type BackendEnvironment } from "../backends/factory.ts";
import type { ClusterClient } from "./client.ts";
import type { BackendFactory } from "./sandboxpool/runtimes.ts";

/**
 * Builds a pool's backend from its spec with the shared factories (backends/factory.ts), after reading credentials from Secrets in
 * the pool's namespace; the controller's own environment fills what they leave unset. Backend modules load only
 * when a pool uses them (no Modal SDK for local pools).
 */
export function backendFactory(client: ClusterClient, dataDir: string, environment: BackendEnvironment = {}): BackendFactory {
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
    const nomad = spec.nomad;
    if (!nomad) throw new Error(`pool ${poolKey}: spec.nomad is required for backend nomad`);
    const token = nomad.tokenSecretRef ? (await secret(namespace, nomad.tokenSecretRef.name))[nomad.tokenSecretRef.key] : undefined;
    const tls = nomad.tlsSecretRef ? await secret(namespace, nomad.tlsSecretRef.name) : {};
    return nomadBackendFromSpec(
      spec,
      {
        ...(token ? { token } : {}),
        ...(tls["ca.crt"] ? { caCert: tls["ca.crt"] } : {}),
        ...(tls["tls.crt"] ? { clientCert: tls["tls.crt"] } : {}),
        ...(tls["tls.key"] ? { clientKey: tls["tls.key"] } : {}),
      },
      environment,
    );
  };
}
