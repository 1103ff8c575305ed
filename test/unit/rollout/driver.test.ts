import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { GroupFailedError, InvalidItemError } from "../../../src/base/errors.ts";
import type { Environment } from "../../../src/envs/types.ts";
import { driveGroups, streamWork, type GroupWork } from "../../../src/rollout/driver.ts";
import { runGroup, Semaphore, type GroupOptions } from "../../../src/rollout/group.ts";
import { SlotPool } from "../../../src/backends/slots/pool.ts";
import type { SandboxBackend, SandboxInfo, SandboxTemplate } from "../../../src/backends/types.ts";
import { slotPoolProvider } from "../../../src/local/slot-provider.ts";
import type { ScoredDataGroup } from "../../../src/rollout/scored.ts";
import type { LeasedSlot } from "../../../src/rollout/types.ts";

/**
 * An item's `verify` says how its group ends: a score, an error that is the item's, or (for "stuck") waiting for
 * the abort; "late" finishes a moment after the abort, ignoring it.
 */
interface Item {
  id: string;
  verify: "pass" | "error" | "stuck" | "late";
}

const env: Environment<Item> = {
  name: "fake",
  longestStepSeconds: 1,
  itemSchema: z.object({ id: z.string(), verify: z.enum(["pass", "error", "stuck", "late"]) }),
  parseItem(row) {
    const parsed = this.itemSchema.safeParse(row);
    if (!parsed.success) throw new InvalidItemError("invalid fake row");
    return parsed.data;
  },
  itemId: (item) => item.id,
  setup: async () => ({ workdir: ".", durationMs: 0 }),
  prompt: (item) => ({ system: "s", user: `solve ${item.id}` }),
  async verify(item, _slot, signal) {
    if (item.verify === "error") throw new Error(`${item.id} cannot be checked`);
    if (item.verify === "stuck" || item.verify === "late") {
      await new Promise((resolve) => signal?.addEventListener("abort", resolve, { once: true }));
      if (item.verify === "stuck") throw signal?.reason;
    }
    return { score: 1, passed: true, details: {} as never, durationMs: 0 };
  },
  oracleCommands: (item) => [`echo ${item.id}`],
};

const slot: LeasedSlot = {
  sandbox: "sb",
  slot: 0,
  exec: async () => ({ exitCode: 0, stdout: "", stderr: "", durationMs: 0, timedOut: false, truncated: false }),
  readFile: async () => new Uint8Array(),
  writeFile: async () => undefined,
  release: async () => undefined,
};

function groupOptions(signal?: AbortSignal): GroupOptions<unknown> {
  return {
    env: env as Environment<unknown>,
    slots: { acquire: async () => slot },
    // Answers without a tool call: the loop ends naturally and the item's verify decides.
    model: { complete: async () => ({ message: { role: "assistant", content: "done" }, finishReason: "stop", latencyMs: 0 }) },
    format: "native",
    generation: { temperature: 1, top_p: 1, max_tokens: 16 },
    limits: { maxTurns: 2, toolTimeoutSeconds: 1, trajectoryTimeoutSeconds: 10, maxTokenLength: 1000, maxToolOutputBytes: 1000 },
    groupSize: 2,
    backoffLimit: 0,
    gate: new Semaphore(4),
    ...(signal ? { signal } : {}),
  };
}

async function* rowsOf(rows: unknown[]): AsyncGenerator<unknown> {
  for (const row of rows) yield row;
}

test("items in, one scored group out per item, failures reported with the item's id; the oracle learns each item", async () => {
  const { take } = streamWork(
    rowsOf([{ id: "a", verify: "pass" }, { id: "b", verify: "error" }, { nonsense: true }, { id: "c", verify: "pass" }]),
  );
  const delivered: ScoredDataGroup[] = [];
  const failed: { index: number; itemId: string; error: unknown }[] = [];
  const oracleTasks: { id: string; prompt: string; commands: string[] }[] = [];
  await driveGroups({
    group: groupOptions(),
    parallel: 2,
    take,
    deliver: async (group) => void delivered.push(group),
    failed: (work, error, itemId) => void failed.push({ index: work.index, itemId, error }),
    oracleTasks,
  });
  assert.deepEqual(delivered.map((g) => [g.metadata.item_id, g.metadata.item_index, g.scores]).sort(), [
    ["a", 0, [1, 1]],
    ["c", 3, [1, 1]],
  ]);
  assert.deepEqual(
    failed.map((f) => [f.index, f.itemId]).sort(),
    [
      [1, "b"],
      [2, "#2"],
    ],
    "an unparsed row is named by its index",
  );
  assert.ok(failed.find((f) => f.itemId === "b")!.error instanceof GroupFailedError);
  assert.ok(failed.find((f) => f.itemId === "#2")!.error instanceof InvalidItemError);
  assert.deepEqual(oracleTasks.map((t) => t.id).sort(), ["a", "b", "c"]);
});

test("every slot acquire of an item asks for the item's image: its image_name, or spec.environment.image filled from the row", async () => {
  const run = async (imageTemplate: string | undefined, rows: unknown[]) => {
    const asked: Array<[string | undefined]> = [];
    const failed: string[] = [];
    const group = { ...groupOptions(), ...(imageTemplate !== undefined ? { imageTemplate } : {}) };
    group.slots = { acquire: async (options) => (asked.push([options.image]), slot) };
    await driveGroups({
      group,
      parallel: 1,
      take: streamWork(rowsOf(rows)).take,
      deliver: async () => undefined,
      failed: (_work, error, itemId) => void failed.push(`${itemId}: ${(error as Error).message}`),
    });
    return { asked, failed };
  };
  const rows = [
    { id: "a", verify: "pass", image_name: "localhost/swe-a:1", repo: "a" },
    { id: "b", verify: "pass", repo: "b" },
  ];
  assert.deepEqual(await run(undefined, rows), {
    asked: [["localhost/swe-a:1"], ["localhost/swe-a:1"], [undefined], [undefined]],
    failed: [],
  });
  assert.deepEqual(await run("localhost/swe-{{repo}}:1", rows), {
    asked: [["localhost/swe-a:1"], ["localhost/swe-a:1"], ["localhost/swe-b:1"], ["localhost/swe-b:1"]],
    failed: [],
  });
  assert.deepEqual(await run("localhost/swe-{{tag}}:1", rows.slice(1)), {
    asked: [],
    failed: ["b: spec.environment.image: the row has no text field tag for {{tag}}"],
  });
});

test("a delivery that fails is the item's failure, and each held item is let go once it ends", async () => {
  const { take } = streamWork(rowsOf([{ id: "a", verify: "pass" }]));
  const held: string[] = [];
  const failed: string[] = [];
  await driveGroups({
    group: groupOptions(),
    parallel: 1,
    take,
    hold: (work) => {
      held.push(`hold ${work.index}`);
      return () => held.push(`end ${work.index}`);
    },
    deliver: async () => {
      throw new Error("intake refused the group");
    },
    failed: (_work, error, itemId) => void failed.push(`${itemId}: ${(error as Error).message}`),
  });
  assert.deepEqual(failed, ["a: intake refused the group"]);
  assert.deepEqual(held, ["hold 0", "end 0"]);
});

test("abort: no new item is taken, in-flight groups end (finished ones delivered, cut ones interrupted)", async () => {
  const abort = new AbortController();
  const rows = [
    { id: "stuck", verify: "stuck" },
    { id: "late", verify: "late" },
  ];
  let taken = 0;
  const delivered: string[] = [];
  const interrupted: number[] = [];
  const failed: number[] = [];
  const drive = driveGroups({
    group: groupOptions(abort.signal),
    parallel: 2,
    take: async (): Promise<GroupWork> => {
      const index = taken++;
      // Abort once both workers hold an item; an endless source otherwise.
      if (taken === 2) setTimeout(() => abort.abort(new Error("stop")), 10);
      return { row: rows[index] ?? { id: `more-${index}`, verify: "pass" }, index };
    },
    deliver: async (group) => void delivered.push(group.metadata.item_id),
    failed: (work) => void failed.push(work.index),
    interrupted: async (work) => void interrupted.push(work.index),
  });
  await drive;
  assert.equal(taken, 2, "nothing taken after the abort");
  assert.deepEqual(delivered, ["late"]);
  assert.deepEqual(interrupted, [0]);
  assert.deepEqual(failed, [], "an interrupted item is not counted as failed");
});

test("a source that fails ends the drive with its error, after the other workers' groups ended", async () => {
  let calls = 0;
  const delivered: string[] = [];
  await assert.rejects(
    driveGroups({
      group: groupOptions(),
      parallel: 2,
      take: async () => {
        calls++;
        if (calls === 1) return { row: { id: "a", verify: "pass" }, index: 0 };
        if (calls === 2) throw new Error("API unreachable");
        return undefined;
      },
      deliver: async (group) => void delivered.push(group.metadata.item_id),
      failed: () => assert.fail("no item failed"),
    }),
    /API unreachable/,
  );
  assert.deepEqual(delivered, ["a"]);
});

test("streamWork numbers rows in stream order however many workers ask at once, and close ends the stream", async () => {
  let closed = false;
  async function* rows(): AsyncGenerator<string> {
    try {
      for (const row of ["r0", "r1", "r2", "r3"]) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        yield row;
      }
    } finally {
      closed = true;
    }
  }
  const { take, close } = streamWork(rows());
  const works = await Promise.all([take(), take(), take()]);
  assert.deepEqual(
    works.map((w) => [w?.row, w?.index]),
    [
      ["r0", 0],
      ["r1", 1],
      ["r2", 2],
    ],
  );
  await close();
  assert.ok(closed);
  assert.equal(await take(), undefined);
});

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
  const options = {
    ...groupOptions(),
    slots: slotPoolProvider(slotPool, { acquireTimeoutMs: 1000, leaseTtlMs: 60_000 }),
    groupSize: 4,
  };

  try {
    const [onA, onB] = await Promise.all([
      runGroup<unknown>({ id: "x", verify: "pass" }, 0, options, "swe-a"),
      runGroup<unknown>({ id: "y", verify: "pass" }, 1, options, "swe-b"),
    ]);
    const placed = (group: typeof onA) => group.metadata.trajectories.map((t) => `${t.sandbox} ${t.image}`);
    assert.deepEqual(placed(onA), Array(4).fill("a2 swe-a"));
    assert.deepEqual(placed(onB), Array(4).fill("b1 swe-b"));
  } finally {
    await slotPool.release(other.id);
    slotPool.close();
  }
});
