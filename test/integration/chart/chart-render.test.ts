import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse, parseAllDocuments } from "yaml";

/** The chart with the real helm binary, offline: lint, rendered snapshots, and values the schema refuses. */
const chart = "deploy/helm/hermes-rollouts";
const snapshots = new URL("./snapshots/", import.meta.url);

function helm(args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync("helm", args, { encoding: "utf8" });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

function render(args: string[]): string {
  const result = helm(["template", "hermes-rollouts", chart, "--namespace", "hermes-system", ...args]);
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

/** The mock Modal's CA is generated at each render: snapshots hold a placeholder. */
const withoutGeneratedCa = (manifest: string) => manifest.replace(/^(\s+tls\.(?:crt|key)): \S+$/gm, "$1: <generated>");

interface Manifest {
  kind: string;
  metadata: { name: string };
  rules?: unknown;
  data?: Record<string, string>;
  spec?: any;
}
const manifests = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);

const valueSets: Record<string, string[]> = {
  default: [],
  "ci-mock-modal": [
    "--set",
    "mockModal.enabled=true",
    "--set",
    "image.pullPolicy=Never",
    "--set",
    "image.tag=dev",
    "--set",
    "controller.runnerImagePullPolicy=Never",
  ],
  "namespaced-ha": [
    "--set",
    "rbac.scope=namespace",
    "--set",
    "controller.replicas=2",
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "dashboard.enabled=true",
    "--set",
    "controller.persistence.enabled=true",
  ],
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
      const rendered = withoutGeneratedCa(render(args));
      const file = new URL(`${name}.yaml`, snapshots);
      if (process.env.UPDATE_SNAPSHOTS === "1" || !existsSync(file)) writeFileSync(file, rendered);
      assert.equal(rendered, readFileSync(file, "utf8"));
    });
  }

  test("RBAC has one source of truth: the chart's rules equal deploy/rbac/clusterrole.yaml, cluster- or namespace-scoped", () => {
    const reference = (parse(readFileSync("deploy/rbac/clusterrole.yaml", "utf8")) as Manifest).rules;
    const cluster = manifests(render([])).filter((m) => m.kind === "ClusterRole");
    assert.deepEqual(
      cluster.map((m) => m.rules),
      [reference],
    );
    const namespaced = manifests(render(["--set", "rbac.scope=namespace"]));
    assert.deepEqual(
      namespaced.filter((m) => m.kind === "Role").map((m) => m.rules),
      [reference],
    );
    assert.equal(namespaced.filter((m) => m.kind.startsWith("Cluster")).length, 0, "namespace scope creates nothing cluster-wide");
  });

  test("the controller gets the chart's image, its pull policy, the downward-API env, and --namespace only when namespaced", () => {
    const controller = (args: string[]) =>
      manifests(render(args)).find((m) => m.kind === "Deployment" && m.metadata.name === "hermes-rollouts")!.spec.template.spec
        .containers[0];
    const cluster = controller(["--set", "image.tag=1.2.3", "--set", "image.pullPolicy=Always"]);
    assert.deepEqual(cluster.args, [
      "controller",
      "--port=8080",
      "--data-dir=/var/lib/hermes-rollouts",
      "--image=localhost/hermes-rollouts:1.2.3",
      "--image-pull-policy=Always",
      "--sandbox-network-policy-from=" +
        "app.kubernetes.io/name=hermes-rollouts,app.kubernetes.io/instance=hermes-rollouts,app.kubernetes.io/component=controller",
    ]);
    assert.deepEqual(
      cluster.env.filter((e: { valueFrom?: unknown }) => e.valueFrom).map((e: { name: string }) => e.name),
      ["POD_NAME", "POD_NAMESPACE", "POD_IP"],
    );
    assert.ok(controller(["--set", "rbac.scope=namespace"]).args.includes("--namespace=hermes-system"));
    assert.ok(controller(["--set", "controller.runnerImagePullPolicy=Never"]).args.includes("--image-pull-policy=Never"));
    const open = controller(["--set", "sandboxNetworkPolicy.enabled=false"]).args as string[];
    assert.ok(!open.some((arg) => arg.startsWith("--sandbox-network-policy-from")), "no NetworkPolicy for kubernetes pools when disabled");
  });

  test("mock Modal: the controller trusts the CA that signs the mock's certificate, generated or given", () => {
    const generated = manifests(render(["--set", "mockModal.enabled=true"]));
    const secret = generated.find((m) => m.kind === "Secret")!;
    assert.equal(secret.metadata.name, "hermes-rollouts-mock-modal-ca");
    assert.match(Buffer.from(secret.data!["tls.crt"]!, "base64").toString(), /^-----BEGIN CERTIFICATE-----/);
    const mounts = (m: Manifest[], name: string) => m.find((d) => d.kind === "Deployment" && d.metadata.name === name)!.spec.template.spec;
    const controller = mounts(generated, "hermes-rollouts");
    assert.equal(controller.volumes.find((v: { name: string }) => v.name === "mock-modal-ca").secret.secretName, secret.metadata.name);
    assert.ok(
      controller.containers[0].env.some(
        (e: { name: string; value?: string }) =>
          e.name === "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH" && e.value === "/etc/hermes-rollouts/mock-modal-ca/ca.crt",
      ),
    );
    const mock = mounts(generated, "hermes-rollouts-mock-modal");
    assert.ok(mock.containers[0].args.includes("--advertise-host=$(POD_IP)"));
    assert.equal(mock.volumes.find((v: { name: string }) => v.name === "ca").secret.secretName, secret.metadata.name);

    const given = manifests(render(["--set", "mockModal.enabled=true", "--set", "mockModal.caSecretName=my-ca"]));
    assert.equal(given.filter((m) => m.kind === "Secret").length, 0, "a given CA Secret is not created");
    assert.equal(
      mounts(given, "hermes-rollouts").volumes.find((v: { name: string }) => v.name === "mock-modal-ca").secret.secretName,
      "my-ca",
    );
    assert.ok(!render([]).includes("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"), "without the mock the controller keeps gRPC's default roots");
  });

  test("replicas share the data dir: persistence.accessMode reaches the claim, and a shared volume keeps rolling updates", () => {
    const rendered = (args: string[]) => manifests(render(["--set", "controller.persistence.enabled=true", ...args]));
    const claim = (m: Manifest[]) => m.find((d) => d.kind === "PersistentVolumeClaim")!.spec.accessModes;
    const strategy = (m: Manifest[]) => m.find((d) => d.kind === "Deployment" && d.metadata.name === "hermes-rollouts")!.spec.strategy;
    const shared = rendered(["--set", "controller.replicas=2", "--set", "controller.persistence.accessMode=ReadWriteMany"]);
    assert.deepEqual(claim(shared), ["ReadWriteMany"]);
    assert.equal(strategy(shared), undefined, "a ReadWriteMany volume mounts in the old and the new pod at once");
    const single = rendered([]);
    assert.deepEqual(claim(single), ["ReadWriteOnce"]);
    assert.deepEqual(strategy(single), { type: "Recreate" });
  });

  const badValues: [string, string[], RegExp][] = [
    ["unknown top-level key", ["--set", "controler.replicas=1"], /additional properties 'controler' not allowed/],
    ["too many replicas", ["--set", "controller.replicas=9"], /controller\/replicas/],
    ["negative replicas", ["--set", "controller.replicas=-1"], /controller\/replicas/],
    ["replicas as text", ["--set-string", "controller.replicas=two"], /controller\/replicas/],
    ["bad pull policy", ["--set", "image.pullPolicy=Sometimes"], /image\/pullPolicy/],
    ["empty repository", ["--set", "image.repository="], /image\/repository/],
    ["bad rbac scope", ["--set", "rbac.scope=everything"], /rbac\/scope/],
    ["port out of range", ["--set", "controller.port=70000"], /controller\/port/],
    ["removed runnersApi port (one port now)", ["--set", "runnersApi.port=8090"], /additional properties 'runnersApi' not allowed/],
    ["bad runner pull policy", ["--set", "controller.runnerImagePullPolicy=Sometimes"], /runnerImagePullPolicy/],
    ["unknown resources key", ["--set", "controller.resources.request.cpu=1"], /controller\/resources/],
    ["CA Secret name not a DNS name", ["--set", "mockModal.caSecretName=My_CA"], /caSecretName/],
    ["bad log level", ["--set", "controller.logLevel=loud"], /controller\/logLevel/],
    ["bad volume size", ["--set", "controller.persistence.size=lots"], /persistence\/size/],
    ["bad volume access mode", ["--set", "controller.persistence.accessMode=ReadWriteSometimes"], /persistence\/accessMode/],
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
