import { createHash } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Configuration, KubeConfig, RequestContext } from "@kubernetes/client-node";
import { createConfiguration, ServerConfiguration } from "../kube.ts";

/**
 * An API client of its own keep-alive connection. client-node 1.4 builds a new agent on every request
 * (KubeConfig.applySecurityAuthentication calls createAgent; kubernetes-client/javascript#2893), so each call opens a
 * fresh TCP and TLS connection: slow and CPU-heavy on a loaded process, which is how a leader missed its renewals.
 * Here the kubeconfig still sets each request's headers (a refreshed token goes out as before) and TLS options; they
 * move onto one agent kept while they stay the same. A cluster behind a proxy keeps client-node's agents.
 */
export function keepAliveApiClient<T>(kubeConfig: KubeConfig, apiClientType: new (configuration: Configuration) => T): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new Error("No active cluster!");
  let kept: { agent: HttpAgent; fingerprint: string } | undefined;
  const authentication = {
    getName: () => "kubeconfig over a keep-alive agent",
    applySecurityAuthentication: async (context: RequestContext): Promise<void> => {
      await kubeConfig.applySecurityAuthentication(context);
      const fresh = context.getAgent();
      if (cluster.proxyUrl !== undefined || fresh === undefined) return;
      const options = (fresh as HttpAgent & { options: Record<string, unknown> }).options;
      const fingerprint = tlsFingerprint(options);
      if (kept?.fingerprint !== fingerprint) {
        kept?.agent.destroy();
        const agentOptions = { ...options, keepAlive: true };
        kept = { agent: fresh instanceof HttpsAgent ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions), fingerprint };
      }
      fresh.destroy();
      context.setAgent(kept.agent);
    },
  };
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: authentication },
  });
  return new apiClientType(configuration);
}

/** What decides the connection: the CA, the client certificate and key, verification and the server name. */
function tlsFingerprint(options: Record<string, unknown>): string {
  const hash = createHash("sha256");
  for (const key of ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"])
    hash.update(`${key}=${String(options[key])}\0`);
  return hash.digest("hex");
}
