import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { contractTemplate } from "../backends/contract.ts";
import { clusterBackend, HERMES_IMAGE, IMAGE_WITHOUT_NODE, SERVER_COMMAND } from "./support.ts";

// How the server gets into a sandbox pod, on the local cluster's real kubelet: copied in by the inject initContainer
// for an image without node, or started by serverCommand in an image that
// carries the CLI. Needs the cluster (scripts/cluster/cluster.sh up) and the images (scripts/image/build.sh).
let injected: Awaited<ReturnType<typeof clusterBackend>>;
let carried: Awaited<ReturnType<typeof clusterBackend>>;

before(async () => {
  injected = await clusterBackend("hr-inject");
  carried = await clusterBackend("hr-carried", { serverCommand: SERVER_COMMAND });
});
after(async () => {
  for (const { backend, cleanup } of [injected, carried]) {
    await backend.close();
    await cleanup();
  }
});

// Half a CPU: the inject initContainer requests the sandbox's CPU, and writing its 13,000 files takes about 9 s of a
// whole one on this machine (well over a minute at 0.1 CPU); the node has 2 CPUs, shared with the suite's other pods.
const template = (image: string) => contractTemplate({ pool: "pool", image, cpu: 0.5, memoryMiB: 256 });

/** Runs one slot command in a fresh sandbox pod; returns its result and the pod as it ran. */
async function runIn(setup: typeof injected, name: string, image: string, command: string) {
  const sandbox = await setup.backend.create(name, template(image));
  const result = await setup.backend.exec(sandbox, { slot: 1, command, timeoutMs: 10_000 });
  const pod = await setup.pods.read(sandbox.id);
  await setup.backend.terminate(sandbox);
  return { result, pod };
}

test("an image without node or the CLI: ready with the injected server, and slot commands run in the image", async () => {
  const { result, pod } = await runIn(
    injected,
    "no-node",
    IMAGE_WITHOUT_NODE,
    "command -v node || echo 'no node'; test -e /app || echo 'no app'; test -x /hermes/node && echo injected; python3 -c 'print(6*7)'",
  );
  assert.deepEqual([result.exitCode, result.stdout], [0, "no node\nno app\ninjected\n42\n"]);
  assert.deepEqual(
    pod?.status?.initContainerStatuses?.map((c) => [c.name, c.state?.terminated?.exitCode]),
    [
      ["check-image", 0],
      ["inject-server", 0],
    ],
  );
});

test("serverCommand: the image's own CLI, no initContainer", async () => {
  const { result, pod } = await runIn(carried, "carried", HERMES_IMAGE, "test -e /hermes || echo 'nothing injected'");
  assert.deepEqual([result.exitCode, result.stdout], [0, "nothing injected\n"]);
  assert.equal(pod?.spec?.initContainers, undefined);
});
