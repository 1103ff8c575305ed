import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { LeaderElector } from "../../../src/operator/runtime/leader.ts";
import { clusterEnv, kubectl } from "../../support/cluster.ts";
import { installOperatorPrereqs, waitFor } from "./harness.ts";

const namespace = `leader-${process.pid}`;
const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 };

before(async () => {
  await installOperatorPrereqs();
  kubectl(["create", "namespace", namespace]);
});
after(() => kubectl(["delete", "namespace", namespace, "--wait=false"]));

function operatorKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(clusterEnv().operatorKubeconfig);
  return kc;
}

test("two replicas on a real Lease: exactly one leads, and the other takes over when it steps down", async () => {
  const leading = new Set<string>();
  let overlap = false;
  const elector = (identity: string) =>
    new LeaderElector({
      kubeConfig: operatorKubeConfig(),
      namespace,
      name: "ctrl",
      identity,
      timings,
      onStartedLeading: () => {
        if (leading.size > 0) overlap = true;
        leading.add(identity);
      },
      onStoppedLeading: () => leading.delete(identity),
    });
  const a = elector("a");
  const b = elector("b");
  a.start();
  b.start();
  await waitFor(() => leading.size === 1, 10_000, "a leader");
  await new Promise((r) => setTimeout(r, 2 * timings.leaseDurationMs));
  assert.equal(leading.size, 1, "renewals keep one leader for longer than a lease duration");
  const [first] = [...leading];
  const [leader, follower] = first === "a" ? [a, b] : [b, a];
  const lease = JSON.parse(kubectl(["get", "lease", "ctrl", "-n", namespace, "-o", "json"]));
  assert.equal(lease.spec.holderIdentity, first);
  assert.match(lease.spec.renewTime, /\.\d{6}Z$/, "MicroTime with 6 fractional digits");
  await leader.stop();
  leading.delete(first!);
  await waitFor(() => follower.isLeader, 10_000, "takeover");
  assert.equal(overlap, false);
  await follower.stop();
});
