import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { SandboxBackend } from "../../../src/backends/types.ts";
import { kubectl } from "../../support/cluster.ts";
import { getJson, waitFor } from "./harness.ts";

/** shell-task items whose oracle solution takes `seconds`, so a fault can land mid-trajectory. */
export function slowItems(count: number, seconds: number): object[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `t${i}`,
    goal: `write ${i}`,
    check: `test "$(cat answer.txt)" = ${i}`,
    solution: `sleep ${seconds}; echo ${i} > answer.txt`,
  }));
}

/** The runner token the controller put in the job's Secret. */
export function runnerToken(namespace: string, job: string): string {
  return Buffer.from(
    kubectl(["get", "secret", `${job}-runner-token`, "-n", namespace, "-o", "jsonpath={.data.token}"]),
    "base64",
  ).toString();
}

/** Indexes stored in a job's results JSONL, in file order. */
export function storedIndexes(resultsPath: string): number[] {
  const text = readFileSync(resultsPath, "utf8").trim();
  return text === "" ? [] : text.split("\n").map((line) => (JSON.parse(line) as { index: number }).index);
}

/** No scored item lost or duplicated: every index exactly once in the sink, and status counts that agree. */
export function assertEveryItemOnce(namespace: string, job: string, items: number): Record<string, any> {
  const { status } = getJson("rolloutjob", job, namespace);
  const indexes = storedIndexes(status.resultsLocation);
  assert.deepEqual(
    [...indexes].sort((a, b) => a - b),
    Array.from({ length: items }, (_, i) => i),
    "each item stored exactly once",
  );
  assert.equal(status.progress.groups, items);
  assert.equal(status.progress.failed, 0);
  assert.equal(status.progress.running, 0);
  assert.equal(status.completedIndexes, items === 1 ? "0" : `0-${items - 1}`);
  return status;
}

/** No slot leaked (the pool's status shows every slot free again) and no sandbox leaked (backend list). */
export async function assertNoLeaks(namespace: string, pool: string, backend: SandboxBackend, expectedSandboxes: number): Promise<void> {
  await waitFor(
    () => {
      const slots = getJson("sandboxpool", pool, namespace).status?.slots;
      return slots?.leased === 0 && slots.free === slots.total && slots.total > 0;
    },
    30_000,
    `pool ${pool}: every slot free`,
  );
  await waitFor(
    async () => (await backend.list(`${namespace}/${pool}`)).filter((s) => s.phase !== "terminated").length === expectedSandboxes,
    30_000,
    `pool ${pool}: ${expectedSandboxes} sandbox(es)`,
  );
}

export async function liveSandboxes(backend: SandboxBackend, namespace: string, pool: string) {
  return (await backend.list(`${namespace}/${pool}`)).filter((s) => s.phase !== "terminated");
}
