// The shared cluster e2e (test/kind/e2e-steps.sh) against the local control plane and its real node: the chart's
// controller, the in-cluster mock Modal and the runner pods all run from the offline-built project image
// (scripts/image/build.sh), imported into the node's containerd, hence pullPolicy Never. The same script runs on kind.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { clusterEnv } from "../../support/cluster.ts";

const image = process.env.HERMES_IMAGE ?? "localhost/hermes-rollouts:dev";
const script = new URL("../../kind/e2e-steps.sh", import.meta.url).pathname;

test(`e2e-steps.sh passes on the local cluster with ${image} (pullPolicy Never)`, { timeout: 600_000 }, async () => {
  const env = clusterEnv();
  const artifacts = mkdtempSync(join(tmpdir(), "hermes-e2e-"));
  const started = Date.now();
  const child = spawn("bash", [script, image, "Never"], {
    env: {
      ...process.env,
      KUBECONFIG: env.kubeconfig,
      // helm and kubectl of the local cluster first; node for the script's JSON reads.
      PATH: `${join(env.helm, "..")}:${join(env.kubectl, "..")}:${join(process.execPath, "..")}:${process.env.PATH ?? ""}`,
      // The cluster is shared with other tests: the controller watches only its own namespace, CRDs stay.
      HERMES_E2E_RBAC_SCOPE: "namespace",
      HERMES_E2E_DELETE_CRDS: "0",
      HERMES_E2E_ARTIFACTS: artifacts,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    process.stderr.write(chunk);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  assert.equal(code, 0, `e2e-steps.sh exited with ${code} after ${seconds} s (artifacts in ${artifacts}):\n${output}`);
  // The script's own checks passed; make sure it really ran them all rather than exiting early with 0.
  assert.match(output, /\[e2e \+\d+s\] PASSED in \d+ s/);
  assert.match(output, /ok: sink: each item exactly once/);
  assert.match(output, /ok: runner log: groups scored/);
  assert.match(output, /ok: pods-job: status.passRate = 1/, "a job ran on a kubernetes pool");
  assert.match(output, /ok: resources of the release left/);
  assert.match(
    readFileSync(join(artifacts, "runner-pod.txt"), "utf8"),
    new RegExp(`^${env.nodeName} `),
    "the runner pod ran on the real node",
  );
  process.stderr.write(`e2e wall time: ${seconds} s\n`);
});
