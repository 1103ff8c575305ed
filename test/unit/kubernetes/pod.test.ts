import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { kubernetesBlock } from "../../../src/api/index.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { describePod, poolSelector, sandboxPod, type PodSettings } from "../../../src/backends/kubernetes/pod.ts";
import { injectedServerCommand } from "../../../src/backends/sandbox-server/inject.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import { computePoolStatus } from "../../../src/operator/sandboxpool/status.ts";

const template: SandboxTemplate = {
  pool: "team/swe",
  image: "registry.example/sandbox:1.2",
  slots: 4,
  cpu: 0.5,
  memoryMiB: 1024,
  lifetimeSeconds: 3600,
  idleTimeoutSeconds: 600,
  templateHash: "abc123",
};
const owner = { apiVersion: "hermes-rollouts.dev/v1alpha1", kind: "SandboxPool", name: "swe", uid: "u-1" };
const settings = kubernetesBlock.parse({
  runtimeClassName: "gvisor",
  nodeSelector: { pool: "sandboxes" },
  tolerations: [{ key: "sandbox", operator: "Exists", effect: "NoSchedule" }],
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
  imagePullSecrets: [{ name: "pull" }],
  serviceAccountName: "sandbox",
  priorityClassName: "batch-low",
});
const isolation = { mode: "bwrap", network: "none" } as const;
const podSettings: PodSettings = {
  namespace: "team",
  settings,
  serverImage: "ghcr.io/x/hermes-rollouts:1.2",
  isolation,
  tokenSecret: { name: "swe-sandbox-token", key: "token" },
  owner,
};
const pod = (status: V1Pod["status"], metadata: Partial<V1Pod["metadata"]> = {}): V1Pod => {
  const manifest = sandboxPod("swe-abc12-f00", template, podSettings, new Date(1_000_500));
  return { ...manifest, metadata: { ...manifest.metadata, uid: "p-1", creationTimestamp: new Date(1_000_000), ...metadata }, status };
};

test("a sandbox pod: owned by its pool, labelled, token from the Secret only, the pool's pod settings and resources", () => {
  const manifest = sandboxPod("swe-abc12-f00", template, podSettings, new Date(0));
  assert.deepEqual(manifest.metadata?.ownerReferences, [{ ...owner, controller: true, blockOwnerDeletion: true }]);
  assert.equal(manifest.metadata?.labels?.["hermes-rollouts.dev/pool"], "swe");
  assert.equal(manifest.metadata?.labels?.["hermes-rollouts.dev/template-hash"], "abc123");
  assert.match(manifest.metadata?.labels?.["hermes-rollouts.dev/image-hash"] ?? "", /^[0-9a-f]{12}$/);
  assert.equal(poolSelector("team/swe"), "hermes-rollouts.dev/pool=swe,app.kubernetes.io/component=sandbox");
  const spec = manifest.spec!;
  const container = spec.containers[0]!;
  assert.deepEqual(container.env?.[0], {
    name: "HERMES_SANDBOX_TOKEN",
    valueFrom: { secretKeyRef: { name: "swe-sandbox-token", key: "token" } },
  });
  assert.ok(container.env?.every((entry) => entry.name !== "HERMES_SANDBOX_TOKEN" || entry.value === undefined));
  assert.deepEqual(container.args?.slice(0, 1), ["sandbox-server"]);
  assert.deepEqual(container.args?.slice(-4), ["--isolation", "bwrap", "--network", "none"], "the pool's isolation reaches the server");
  assert.deepEqual(container.resources, { requests: { cpu: "500m", memory: "1024Mi" }, limits: { cpu: "500m", memory: "1024Mi" } });
  assert.ok(container.readinessProbe?.exec?.command?.join(" ").includes("GET /health"));
  assert.equal(spec.automountServiceAccountToken, false);
  assert.equal(spec.restartPolicy, "Never");
  assert.equal(spec.activeDeadlineSeconds, 3600);
  assert.equal(spec.runtimeClassName, "gvisor");
  assert.equal(spec.serviceAccountName, "sandbox");
  assert.equal(spec.priorityClassName, "batch-low");
  assert.deepEqual(spec.nodeSelector, { pool: "sandboxes" });
  assert.deepEqual(spec.imagePullSecrets, [{ name: "pull" }]);
  assert.equal(spec.tolerations?.[0]?.key, "sandbox");
  assert.ok(spec.affinity?.nodeAffinity);
});

test("an image without the CLI: an initContainer of the server image injects the server into an emptyDir the sandbox runs", () => {
  const spec = sandboxPod("swe-abc12-f00", template, podSettings, new Date(0)).spec!;
  const [check, inject] = spec.initContainers ?? [];
  const container = spec.containers[0]!;
  assert.equal(spec.initContainers?.length, 2);
  // First the sandbox image itself: pulled (and its bash found) before the copy, so a bad image is reported at once.
  assert.deepEqual([check?.name, check?.image, check?.imagePullPolicy], ["check-image", "registry.example/sandbox:1.2", undefined]);
  assert.deepEqual(check?.command, ["bash", "-c", ":"]);
  assert.equal(inject?.image, "ghcr.io/x/hermes-rollouts:1.2");
  assert.equal(inject?.command, undefined, "the server image's entrypoint is the CLI");
  assert.deepEqual(inject?.args, ["inject", "--to", "/hermes"]);
  assert.deepEqual(inject?.volumeMounts, [{ name: "server", mountPath: "/hermes" }]);
  assert.ok(container.volumeMounts?.some((m) => m.name === "server" && m.mountPath === "/hermes" && m.readOnly === true));
  assert.deepEqual(
    spec.volumes?.find((v) => v.name === "server"),
    { name: "server", emptyDir: {} },
  );
  assert.deepEqual(container.command, injectedServerCommand("/hermes"));
  assert.deepEqual(container.command, ["/hermes/node", "/hermes/app/bin/hermes-rollouts.js"]);
  assert.equal(container.image, "registry.example/sandbox:1.2");
  for (const init of [check, inject]) {
    assert.deepEqual(init?.resources, { requests: container.resources?.requests }, "the sandbox's request: no more reserved");
  }
});

test("an image that carries the CLI: serverCommand starts it, no initContainer and no server image needed", () => {
  const carrying = { ...podSettings, settings: { ...settings, serverCommand: ["node", "/app/bin/hermes-rollouts.js"] } };
  delete carrying.serverImage;
  const spec = sandboxPod("swe-abc12-f00", template, carrying, new Date(0)).spec!;
  assert.equal(spec.initContainers, undefined);
  assert.deepEqual(spec.containers[0]!.command, ["node", "/app/bin/hermes-rollouts.js"]);
  assert.deepEqual(spec.containers[0]!.args?.[0], "sandbox-server");
  assert.deepEqual(
    spec.volumes?.map((v) => v.name),
    ["data"],
  );
});

test("no serverCommand and no server image: refused as the pool's configuration, naming the field", () => {
  const neither = { ...podSettings };
  delete neither.serverImage;
  assert.throws(
    () => sandboxPod("swe-abc12-f00", template, neither, new Date(0)),
    (e: unknown) => isSandboxError(e, "configuration") && /spec\.kubernetes\.serverImage is required/.test(e.message),
  );
});

test("init containers: an unpullable server image is stuck ImagePullFailed; a failed copy or check fails the pod, reason kept", () => {
  const initStatus = (state: object, name = "inject-server") => ({ name, image: "x", imageID: "", ready: false, restartCount: 0, state });
  const waitingMain = {
    name: "sandbox",
    image: "x",
    imageID: "",
    ready: false,
    restartCount: 0,
    state: { waiting: { reason: "PodInitializing" } },
  };
  const pulling = describePod(
    pod({
      phase: "Pending",
      initContainerStatuses: [
        initStatus({ terminated: { exitCode: 0, reason: "Completed" } }, "check-image"),
        initStatus({ waiting: { reason: "ErrImagePull", message: "not found" } }),
      ],
      containerStatuses: [waitingMain],
    }),
    "team/swe",
  );
  assert.deepEqual([pulling.phase, pulling.stuck, pulling.message], ["starting", "ImagePullFailed", "ErrImagePull: not found"]);
  const copying = describePod(
    pod({ phase: "Pending", initContainerStatuses: [initStatus({ running: {} })], containerStatuses: [waitingMain] }),
    "team/swe",
  );
  assert.deepEqual([copying.phase, copying.stuck, copying.message], ["starting", undefined, "PodInitializing"]);
  const failed = describePod(
    pod({
      phase: "Failed",
      initContainerStatuses: [initStatus({ terminated: { exitCode: 1, reason: "Error", message: "ENOSPC: no space left on device" } })],
      containerStatuses: [waitingMain],
    }),
    "team/swe",
  );
  assert.deepEqual(
    [failed.phase, failed.message],
    ["failed", "pod failed: container inject-server Error (exit 1): ENOSPC: no space left on device"],
  );
  const noBash = describePod(
    pod({
      phase: "Failed",
      initContainerStatuses: [
        initStatus({ terminated: { exitCode: 128, reason: "StartError", message: 'exec: "bash": not found' } }, "check-image"),
      ],
      containerStatuses: [waitingMain],
    }),
    "team/swe",
  );
  assert.equal(noBash.message, 'pod failed: container check-image StartError (exit 128): exec: "bash": not found');
});

test("pod states as sandbox phases: ready only when the probe passed; kubelet and scheduler reasons kept", () => {
  const running = (ready: boolean) =>
    pod({ phase: "Running", podIP: "10.1.0.5", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] });
  assert.equal(describePod(running(true), "team/swe").phase, "ready");
  assert.equal(describePod(running(false), "team/swe").phase, "starting");
  const info = describePod(running(true), "team/swe");
  assert.deepEqual([info.name, info.slots, info.templateHash, info.createdAt.getTime()], ["swe-abc12-f00", 4, "abc123", 1_000_500]);

  const pulling = describePod(
    pod({
      phase: "Pending",
      containerStatuses: [
        {
          name: "sandbox",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } },
        },
      ],
    }),
    "team/swe",
  );
  assert.deepEqual(
    [pulling.phase, pulling.stuck, pulling.message],
    ["starting", "ImagePullFailed", "ImagePullBackOff: Back-off pulling image"],
  );
  const creating = describePod(
    pod({
      phase: "Pending",
      containerStatuses: [
        { name: "sandbox", image: "x", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } },
      ],
    }),
    "team/swe",
  );
  assert.deepEqual([creating.phase, creating.stuck], ["starting", undefined]);
  const unschedulable = describePod(
    pod({
      phase: "Pending",
      conditions: [
        { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes are available: 1 Insufficient cpu." },
      ],
    }),
    "team/swe",
  );
  assert.deepEqual([unschedulable.phase, unschedulable.stuck], ["starting", "Unschedulable"]);
  const evicted = describePod(pod({ phase: "Failed", reason: "Evicted", message: "The node was low on resource: memory." }), "team/swe");
  assert.deepEqual([evicted.phase, evicted.message], ["failed", "pod failed: Evicted: The node was low on resource: memory."]);
  const deleting = describePod(pod({ phase: "Running" }, { deletionTimestamp: new Date(2_000_000) }), "team/swe");
  assert.equal(deleting.phase, "terminated");
});

test("a pool whose sandbox cannot pull its image is not Ready, with reason ImagePullFailed", () => {
  const pulling = {
    ...describePod(pod({ phase: "Pending" }), "team/swe"),
    phase: "starting" as const,
    stuck: "ImagePullFailed" as const,
    message: "ErrImagePull: not found",
  };
  const status = computePoolStatus({
    generation: 1,
    previous: undefined,
    sandboxes: [pulling],
    image: "localhost/swe:1",
    templateHash: "abc123",
    slotsPerSandbox: 4,
    leased: 0,
    quarantined: 0,
    isolation: undefined,
    isolationMode: "bwrap",
    plan: { create: 0, creates: [], terminate: [], desired: 1, draining: [], evicting: [] },
    backendError: "create failed: sandbox pod swe-abc12-f00: ErrImagePull: not found",
    now: new Date(0),
  });
  const ready = status.conditions?.find((c) => c.type === "Ready");
  assert.deepEqual([ready?.status, ready?.reason, ready?.message], ["False", "ImagePullFailed", "swe-abc12-f00: ErrImagePull: not found"]);
});
