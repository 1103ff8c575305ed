/**
 * Fakes for the operator's unit tests. The one outside system here is the Kubernetes API as the controller sees it
 * through @kubernetes/client-node 1.4 (kubernetes-client/javascript): a refused write is its ApiException, whose
 * `code` is the HTTP status and whose `body` is the apiserver's metav1.Status JSON (k8s.io/apimachinery
 * pkg/apis/meta/v1 types.go, Status: kind, code, message). The backend and pool runtime fakes stand in for this
 * project's own SandboxBackend (src/backends/types.ts).
 */
import assert from "node:assert/strict";
import type { SandboxBackend, SandboxHealth, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";
import { PoolLoop } from "../../../src/backends/slots/loop.ts";
import { InMemoryLeaseStore } from "../../../src/backends/slots/lease-store.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { ClusterClient } from "../../../src/operator/client.ts";
import type { PoolRuntime } from "../../../src/operator/sandboxpool/runtimes.ts";
import type { Recorder } from "../../../src/operator/runtime/events.ts";

export interface Action {
  verb: string;
  target: string;
  body?: unknown;
}

/** What the apiserver throws for a refused write (the client's ApiException): a code and a Status body. */
export function apiRefusal(code: number, message: string): Error {
  return Object.assign(new Error(`HTTP-Code: ${code}`), { code, body: JSON.stringify({ kind: "Status", code, message }) });
}

/**
 * A ClusterClient that records writes; `expect` checks the exact list and fails on anything unexpected. A create
 * named in `refuse` is recorded, then refused with that error (change `refuse` between passes to let it through).
 */
export function recordingClient(
  reads: { secrets?: Record<string, Record<string, string>>; configMaps?: Record<string, Record<string, string>> } = {},
) {
  const actions: Action[] = [];
  const refuse: { createPod?: Error; createSecret?: Error } = {};
  const client: ClusterClient = {
    patchStatus: async (ref, status) =>
      void actions.push({ verb: "patchStatus", target: `${ref.kind}/${ref.namespace}/${ref.name}`, body: status }),
    setFinalizers: async (ref, finalizers) =>
      void actions.push({ verb: "setFinalizers", target: `${ref.kind}/${ref.namespace}/${ref.name}`, body: finalizers }),
    deleteObject: async (ref) => void actions.push({ verb: "delete", target: `${ref.kind}/${ref.namespace}/${ref.name}` }),
    createPod: async (ns, pod) => {
      actions.push({ verb: "createPod", target: `${ns}/${pod.metadata?.name}`, body: pod });
      if (refuse.createPod) throw refuse.createPod;
    },
    deletePod: async (ns, name) => void actions.push({ verb: "deletePod", target: `${ns}/${name}` }),
    readPod: async () => undefined,
    listPods: async () => [],
    createSecret: async (ns, secret) => {
      actions.push({ verb: "createSecret", target: `${ns}/${secret.metadata?.name}`, body: secret });
      if (refuse.createSecret) throw refuse.createSecret;
    },
    deleteSecret: async (ns, name) => void actions.push({ verb: "deleteSecret", target: `${ns}/${name}` }),
    ensureNetworkPolicy: async (ns, policy) =>
      void actions.push({ verb: "ensureNetworkPolicy", target: `${ns}/${policy.metadata?.name}`, body: policy }),
    readSecret: async (ns, name) => reads.secrets?.[`${ns}/${name}`],
    readConfigMap: async (ns, name) => reads.configMaps?.[`${ns}/${name}`],
  };
  return {
    client,
    actions,
    refuse,
    /** Asserts the writes, in order, by verb and target; returns them for body checks. */
    expect(expected: string[]): Action[] {
      assert.deepEqual(
        actions.map((a) => `${a.verb} ${a.target}`),
        expected,
      );
      return actions.splice(0);
    },
  };
}

export function recordingRecorder() {
  const events: string[] = [];
  const recorder: Recorder = { event: (_t, type, reason, message) => void events.push(`${type} ${reason}: ${message}`) };
  return { recorder, events };
}

/** An in-memory backend: sandboxes become ready at once unless `startPhase` says otherwise. */
export function fakeBackend(
  options: { startPhase?: SandboxInfo["phase"]; failCreate?: string; createGate?: Promise<void>; health?: SandboxHealth } = {},
) {
  const sandboxes = new Map<string, SandboxInfo>();
  const calls: string[] = [];
  const backend: SandboxBackend = {
    kind: "local",
    async create(name: string, template: SandboxTemplate) {
      calls.push(`create ${name}`);
      await options.createGate;
      if (options.failCreate) throw new Error(options.failCreate);
      const info: SandboxInfo = {
        id: name,
        name,
        pool: template.pool,
        phase: options.startPhase ?? "ready",
        slots: template.slots,
        templateHash: template.templateHash,
        image: template.image,
        createdAt: new Date("2026-01-01T00:00:00Z"),
      };
      sandboxes.set(name, info);
      return info;
    },
    async list(pool: string) {
      return [...sandboxes.values()].filter((s) => s.pool === pool);
    },
    async exec() {
      return { exitCode: 0, stdout: "", stderr: "", durationMs: 0, timedOut: false, truncated: false };
    },
    async readFile() {
      return new Uint8Array();
    },
    async writeFile() {},
    async resetSlot(sandbox, slot) {
      calls.push(`reset ${sandbox.name}#${slot}`);
    },
    async health() {
      return options.health ?? { ok: true, isolation: "bwrap" as const };
    },
    async terminate(sandbox) {
      calls.push(`terminate ${sandbox.name}`);
      sandboxes.delete(sandbox.id);
    },
    async close() {},
  };
  return { backend, sandboxes, calls };
}

/**
 * A pool runtime `ns/p` over `fakeBackend`, as the runners' API sees one: a started SlotPool whose store knows the
 * pool (so no slot starts blocked) and no sandbox yet; `addSandbox` lists one ready sandbox of `slots` slots.
 */
export async function fakePoolRuntime(slots: number, acquireTimeoutMs: number) {
  const { backend } = fakeBackend();
  const template: SandboxTemplate = {
    pool: "ns/p",
    templateHash: "h",
    slots,
    image: "i",
    cpu: 1,
    memoryMiB: 512,
    lifetimeSeconds: 0,
    idleTimeoutSeconds: 0,
  };
  const store = new InMemoryLeaseStore();
  await store.remove("ns/p", "none");
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 60_000, store });
  await slotPool.start(0);
  const runtime: PoolRuntime = {
    backend,
    slots: slotPool,
    acquireTimeoutMs,
    warmCaps: { maxSandboxes: 4, minPerImage: 0 },
    loop: new PoolLoop({ backend, slotPool, scaleDownDelayMs: 0 }),
  };
  const addSandbox = async (image = template.image) => slotPool.setSandboxes([await backend.create("sb", slotPool.templateFor(image))]);
  return { runtime, addSandbox };
}
