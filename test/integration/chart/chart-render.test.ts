import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";

/** The chart with the real helm binary, offline: lint, rendered snapshots, and values the schema refuses. */
const chart = "deploy/helm/hermes-rollouts";
const snapshots = new URL("./snapshots/", import.meta.url);

function helm(args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync("helm", args, { encoding: "utf8" });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

const valueSets: Record<string, string[]> = {
  default: [],
  "ci-mock-modal": ["--set", "mockModal.enabled=true", "--set", "image.pullPolicy=Never", "--set", "image.tag=dev"],
  "namespaced-ha": ["--set", "rbac.scope=namespace", "--set", "controller.replicas=2", "--set", "metrics.serviceMonitor.enabled=true", "--set", "dashboard.enabled=true", "--set", "controller.persistence.enabled=true"],
};

describe("helm chart", () => {
  test("helm lint --strict passes", () => {
    const result = helm(["lint", "--strict", chart]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test("chart version and appVersion follow package.json", () => {
    const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    const chartYaml = readFileSync(`${chart}/Chart.yaml`, "utf8");
    assert.match(chartYaml, new RegExp(`^version: ${version.replaceAll(".", "\\.")}$`, "m"));
    assert.match(chartYaml, new RegExp(`^appVersion: "${version.replaceAll(".", "\\.")}"$`, "m"));
  });

  for (const [name, args] of Object.entries(valueSets)) {
    test(`helm template matches the ${name} snapshot (UPDATE_SNAPSHOTS=1 rewrites it)`, () => {
      const result = helm(["template", "hermes-rollouts", chart, "--namespace", "hermes-system", ...args]);
      assert.equal(result.status, 0, result.stderr);
      const file = new URL(`${name}.yaml`, snapshots);
      if (process.env.UPDATE_SNAPSHOTS === "1" || !existsSync(file)) writeFileSync(file, result.stdout);
      assert.equal(result.stdout, readFileSync(file, "utf8"));
    });
  }

  const badValues: [string, string[], RegExp][] = [
    ["unknown top-level key", ["--set", "controler.replicas=1"], /additional properties 'controler' not allowed/],
    ["too many replicas", ["--set", "controller.replicas=9"], /controller\/replicas/],
    ["negative replicas", ["--set", "controller.replicas=-1"], /controller\/replicas/],
    ["replicas as text", ["--set-string", "controller.replicas=two"], /controller\/replicas/],
    ["bad pull policy", ["--set", "image.pullPolicy=Sometimes"], /image\/pullPolicy/],
    ["empty repository", ["--set", "image.repository="], /image\/repository/],
    ["bad rbac scope", ["--set", "rbac.scope=everything"], /rbac\/scope/],
    ["port out of range", ["--set", "metrics.port=70000"], /metrics\/port/],
    ["bad log level", ["--set", "controller.logLevel=loud"], /controller\/logLevel/],
    ["bad volume size", ["--set", "controller.persistence.size=lots"], /persistence\/size/],
    ["bad scrape interval", ["--set", "metrics.serviceMonitor.interval=often"], /serviceMonitor\/interval/],
    ["mock modal port as text", ["--set-string", "mockModal.port=grpc"], /mockModal\/port/],
  ];
  for (const [name, args, message] of badValues) {
    test(`values schema rejects: ${name}`, () => {
      const result = helm(["template", "hermes-rollouts", chart, ...args]);
      assert.notEqual(result.status, 0, "helm template should fail");
      assert.match(result.stderr, message);
    });
  }
});
