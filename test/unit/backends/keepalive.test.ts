import { test } from "node:test";
import assert from "node:assert/strict";
import { KeepAlive } from "../../../src/backends/slots/keepalive.ts";
import type { SandboxInfo, SandboxPhase } from "../../../src/backends/types.ts";

const sandbox = (name: string, phase: SandboxPhase = "ready"): SandboxInfo => ({
  id: name,
  name,
  pool: "p",
  phase,
  slots: 1,
  templateHash: "v1",
  createdAt: new Date(0),
});
const names = (list: SandboxInfo[]) => list.map((s) => s.name);

test("each ready sandbox is probed once per third of the idle timeout, starting one interval after it is first seen", () => {
  const keepAlive = new KeepAlive();
  const listed = [sandbox("a"), sandbox("b", "starting")];
  assert.deepEqual(names(keepAlive.due(listed, 30, 0)), [], "first seen: fresh");
  assert.deepEqual(names(keepAlive.due(listed, 30, 9_999)), []);
  assert.deepEqual(names(keepAlive.due(listed, 30, 10_000)), ["a"], "not the starting one");
  assert.deepEqual(names(keepAlive.due(listed, 30, 15_000)), [], "probed at 10 s: next at 20 s");
  assert.deepEqual(names(keepAlive.due(listed, 30, 20_000)), ["a"]);
});

test("a sandbox that leaves the listing is forgotten, and no idle timeout means no probes", () => {
  const keepAlive = new KeepAlive();
  keepAlive.due([sandbox("a")], 30, 0);
  keepAlive.due([], 30, 5_000);
  assert.deepEqual(names(keepAlive.due([sandbox("a")], 30, 20_000)), [], "back in the listing: fresh again");
  assert.deepEqual(names(keepAlive.due([sandbox("a")], 0, 100_000)), []);
});
