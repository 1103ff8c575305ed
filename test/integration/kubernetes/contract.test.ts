import { contractTemplate, runBackendContract } from "../backends/contract.ts";
import { clusterBackend, HERMES_IMAGE, SERVER_COMMAND } from "./support.ts";

// The kubernetes backend on the local cluster's real kubelet (containerd + runc): every sandbox is a pod running the
// project's image and its sandbox server (serverCommand: the burst test's ten pods would each copy the server in on
// a loaded two-core node; injected-server.test.ts covers that path), reached at the pod's IP. The assertions live in
// backends/contract.ts.
// Needs the cluster (scripts/cluster/cluster.sh up) and the image (scripts/image/build.sh).
runBackendContract("kubernetes (local cluster, real kubelet)", async () => {
  const { backend, cleanup } = await clusterBackend("hr-contract", { serverCommand: SERVER_COMMAND });
  // Small pods: the burst test runs ten of them on a two-core node.
  return { backend, template: contractTemplate({ image: HERMES_IMAGE, cpu: 0.1, memoryMiB: 256 }), teardown: cleanup };
});
