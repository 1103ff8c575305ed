import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { LABELS, poolName, SANDBOX_COMPONENT, SANDBOX_PORT, type PodSettings } from "./pod.ts";

/** Who may reach a pool's sandbox servers: the controller's pods, by namespace and labels. */
export interface SandboxIngress {
  namespace: string;
  podLabels: Record<string, string>;
}

export const networkPolicyName = (poolKey: string) => `${poolName(poolKey)}-sandboxes`;

/**
 * A pool's NetworkPolicy: its sandbox pods take connections on the server's port from the controller's pods only
 * (not from runner pods, other sandboxes or anything else in the cluster); egress stays open, so setup can clone
 * and install. The namespace is matched by its `kubernetes.io/metadata.name` label, which Kubernetes sets on every
 * namespace from 1.21 on. Owned by the pool, so it goes with it. Enforced only by a CNI plugin that implements
 * NetworkPolicy (Calico, Cilium, ...); the plain bridge plugin ignores it.
 */
export function sandboxNetworkPolicy(
  poolKey: string,
  pod: Pick<PodSettings, "namespace" | "owner">,
  from: SandboxIngress,
): V1NetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: networkPolicyName(poolKey),
      namespace: pod.namespace,
      labels: { [LABELS.pool]: poolName(poolKey), "app.kubernetes.io/name": "hermes-rollouts" },
      ...(pod.owner ? { ownerReferences: [{ ...pod.owner, controller: true, blockOwnerDeletion: true }] } : {}),
    },
    spec: {
      podSelector: { matchLabels: { [LABELS.pool]: poolName(poolKey), [LABELS.component]: SANDBOX_COMPONENT } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          // client-node names the field `_from` and writes it as `from` (its serializer maps the attribute).
          _from: [
            {
              namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": from.namespace } },
              podSelector: { matchLabels: from.podLabels },
            },
          ],
          ports: [{ protocol: "TCP", port: SANDBOX_PORT }],
        },
      ],
    },
  };
}
