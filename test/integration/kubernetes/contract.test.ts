import { contractTemplate, runBackendContract } from "../backends/contract.ts";
import { clusterBackend, SANDBOX_IMAGE } from "./support.ts";

// The kubernetes backend on the local cluster's real kubelet (containerd + runc): every sandbox is a pod running the
// project's image and its sandbox server, reached at the pod's IP. The assertions live in backends/contract.ts.
// Needs the cluster (scripts/cluster/cluster.sh up) and the image (scripts/image/build.sh).
runBackendContract("kubernetes (local cluster, real kubelet)", async () => {
  const { backend, cleanup } = await clusterBackend("hr-contract");
  // Small pods: the burst test runs ten of them on a two-core node.
  return { backend, template: contractTemplate({ image: SANDBOX_IMAGE, cpu: 0.1, memoryMiB: 256 }), teardown: cleanup };
});
