import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { API_VERSION } from "../../../src/api/index.ts";
import { schemaInvalidCases, validJobSpecs, validPoolSpecs } from "../../fixtures/api-cases.ts";
import { kubectl, kubectlResult, waitForCrdsEstablished } from "../../support/cluster.ts";
import { exampleObjects } from "../../support/examples.ts";

/** The generated CRDs against the real 1.20 apiserver, driven by the real kubectl, as a user would. */
const namespace = `api-${process.pid}`;
const kinds = { pool: "SandboxPool", job: "RolloutJob" } as const;

function manifest(kind: "pool" | "job", name: string, spec: object): string {
  return stringify({ apiVersion: API_VERSION, kind: kinds[kind], metadata: { name, namespace }, spec });
}

describe("CRDs on a real kube-apiserver", () => {
  before(async () => {
    // 1.20 has no CEL: client-side apply without client validation installs the CRDs with their rules dropped.
    kubectl(["apply", "--validate=false", "-f", "deploy/crds/"]);
    await waitForCrdsEstablished();
    kubectl(["create", "namespace", namespace]);
  });
  after(() => {
    kubectl(["delete", "namespace", namespace, "--wait=false"]);
  });

  test("valid example objects are accepted and defaulted", () => {
    for (const [name, spec] of Object.entries(validPoolSpecs)) kubectl(["apply", "-f", "-"], manifest("pool", name, spec));
    for (const [name, spec] of Object.entries(validJobSpecs)) kubectl(["apply", "-f", "-"], manifest("job", name, spec));
    const pool = JSON.parse(kubectl(["get", "sandboxpool", "local", "-n", namespace, "-o", "json"]));
    assert.equal(pool.spec.leaseTTLSeconds, 60, "schema defaults are applied by the apiserver");
    assert.deepEqual(pool.spec.resources, { cpu: "1", memory: "2Gi" });
    const job = JSON.parse(kubectl(["get", "rolloutjob", "builtin", "-n", namespace, "-o", "json"]));
    assert.equal(job.spec.limits.maxTurns, 30);
    assert.equal(job.spec.model.toolCallFormat, "auto");
  });

  test("every example in examples/ is accepted", () => {
    for (const { object } of exampleObjects()) {
      kubectl(["apply", "-n", namespace, "-f", "-"], stringify(object));
      kubectl(["get", object.kind.toLowerCase(), object.metadata.name, "-n", namespace]);
    }
  });

  test(`${schemaInvalidCases.length} invalid objects are rejected with a message naming the field`, () => {
    assert.ok(schemaInvalidCases.length >= 20);
    const accepted: string[] = [];
    for (const [i, c] of schemaInvalidCases.entries()) {
      // --validate=false: the apiserver itself must refuse the object, not kubectl's client-side check.
      const result = kubectlResult(["create", "--validate=false", "-f", "-"], manifest(c.kind, `bad-${i}`, c.spec));
      if (result.status === 0) accepted.push(c.name);
      else assert.match(result.stderr, new RegExp(c.field.replaceAll(".", "\\.")), `${c.name}: ${result.stderr}`);
    }
    assert.deepEqual(accepted, []);
  });

  test("kubectl get shows the printer columns", () => {
    const pools = kubectl(["get", "sandboxpools", "-n", namespace]);
    assert.match(pools.split("\n")[0]!, /NAME\s+BACKEND\s+READY\s+IMAGES\s+FREE\s+SLOTS\s+STATUS\s+AGE/);
    assert.match(pools, /^modal\s+modal\s/m);
    const jobs = kubectl(["get", "rolloutjobs", "-n", namespace]);
    assert.match(jobs.split("\n")[0]!, /NAME\s+POOL\s+STATUS\s+PROGRESS\s+PASS-RATE\s+AGE/);
    assert.match(
      kubectl(["get", "hermes", "-n", namespace]),
      /sandboxpool\.hermes-rollouts\.dev\/local/,
      "category hermes lists both kinds",
    );
    assert.match(kubectl(["get", "rj", "-n", namespace]), /^vllm\s+modal\s/m, "short name rj works");
  });

  test("kubectl explain prints the field descriptions", () => {
    const model = kubectl(["explain", "rolloutjob.spec.model"]);
    assert.match(model, /The policy model the agent samples from/);
    assert.match(model, /toolCallFormat/);
    assert.match(model, /native: OpenAI tool_calls/);
    assert.match(kubectl(["explain", "sandboxpool.spec.slotsPerSandbox"]), /Isolated workspaces \(slots\) per sandbox/);
    assert.match(kubectl(["explain", "rolloutjob.status.completedIndexes"]), /compact ranges/);
  });
});
