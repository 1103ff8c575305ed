import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";
import type { Environment } from "../../../src/envs/types.ts";
import { slotPoolProvider } from "../../../src/local/slot-provider.ts";
import { runGroup, type GroupOptions } from "../../../src/rollout/group.ts";

/** Sandboxes that answer every call at once: only where leases land matters here. */
const backend: SandboxBackend = {
  kind: "local",
  create: async () => {
    throw new Error("not used");
  },
  list: async () => [],
  exec: async () => ({ exitCode: 0, stdout: "", stderr: "", durationMs: 0, timedOut: false, truncated: false }),
  readFile: async () => new Uint8Array(),
  writeFile: async () => undefined,
  resetSlot: async () => undefined,
  health: async () => ({ ok: true, isolation: "none" }),
  terminate: async () => undefined,
  close: async () => undefined,
};

const template: SandboxTemplate = {
  pool: "p",
  image: "pool-image",
  slots: 4,
  cpu: 1,
  memoryMiB: 512,
  lifetimeSeconds: 0,
  idleTimeoutSeconds: 0,
  templateHash: "h",
};

const env: Environment<{ id: string }> = {
  name: "fake",
  longestStepSeconds: 1,
  itemSchema: z.object({ id: z.string() }),
  parseItem: (row) => row as { id: string },
  itemId: (item) => item.id,
  setup: async () => ({ workdir: ".", durationMs: 0 }),
  prompt: (item) => ({ system: "s", user: item.id }),
  verify: async () => ({ score: 1, passed: true, details: {} as never, durationMs: 0 }),
  oracleCommands: () => [],
};

test("a group of G on one image runs on one sandbox of that image, and the scored metadata shows it", async () => {
  const slotPool = new SlotPool({ backend, template, leaseTtlMs: 60_000 });
  await slotPool.start(0);
  // Created after the pool started: no slot is held back as possibly leased before a restart.
  const sandbox = (name: string, image: string): SandboxInfo => {
    const { templateHash } = slotPool.templateFor(image);
    return { id: name, name, pool: "p", phase: "ready", slots: 4, templateHash, image, createdAt: new Date() };
  };
  slotPool.setSandboxes([sandbox("a1", "swe-a"), sandbox("a2", "swe-a"), sandbox("b1", "swe-b")]);
  // Another job holds one slot of a1: a group of 4 split over a1 and a2 unless it is placed as a group.
  const other = await slotPool.acquire("other-job", { timeoutMs: 1000, image: "swe-a" });
  assert.equal(other.sandbox.name, "a1");
  const options: GroupOptions<{ id: string }> = {
    env,
    slots: slotPoolProvider(slotPool, { acquireTimeoutMs: 1000, leaseTtlMs: 60_000 }),
    model: { complete: async () => ({ message: { role: "assistant", content: "done" }, finishReason: "stop", latencyMs: 0 }) },
    format: "native",
    generation: { temperature: 1, top_p: 1, max_tokens: 16 },
    limits: { maxTurns: 1, toolTimeoutSeconds: 1, trajectoryTimeoutSeconds: 10, maxTokenLength: 1000, maxToolOutputBytes: 1000 },
    groupSize: 4,
    backoffLimit: 0,
  };
  try {
    const [onA, onB] = await Promise.all([runGroup({ id: "x" }, 0, options, "swe-a"), runGroup({ id: "y" }, 1, options, "swe-b")]);
    const placed = (group: typeof onA) => group.metadata.trajectories.map((t) => `${t.sandbox} ${t.image}`);
    assert.deepEqual(placed(onA), Array(4).fill("a2 swe-a"));
    assert.deepEqual(placed(onB), Array(4).fill("b1 swe-b"));
  } finally {
    await slotPool.release(other.id);
    slotPool.close();
  }
});
