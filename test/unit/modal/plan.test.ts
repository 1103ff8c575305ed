import { test } from "node:test";
import assert from "node:assert/strict";
import {
  execArgv,
  infoFromTags,
  isValidSandboxName,
  maxThrottleWaitSecs,
  poolSelector,
  prepareArgv,
  sandboxTags,
  sdkLogger,
  wholeSecondsMs,
} from "../../../src/backends/modal/plan.ts";
import type { SandboxTemplate } from "../../../src/backends/types.ts";
import type { Logger } from "../../../src/base/log.ts";

const template: SandboxTemplate = {
  pool: "team-a/pool-1",
  image: "python:3.12",
  slots: 4,
  cpu: 2,
  memoryMiB: 2048,
  lifetimeSeconds: 3600,
  idleTimeoutSeconds: 600,
  templateHash: "abc123",
};

test("sandbox tags round-trip into the SandboxInfo that list rebuilds from", () => {
  const createdAt = new Date("2026-01-02T03:04:05.000Z");
  const tags = sandboxTags("team-a-pool-1-0", template, createdAt);
  for (const [key, value] of Object.entries(poolSelector(template.pool))) assert.equal(tags[key], value, "tags include the pool selector");
  assert.deepEqual(infoFromTags("sb-1", tags), {
    id: "sb-1",
    name: "team-a-pool-1-0",
    pool: "team-a/pool-1",
    phase: "ready",
    slots: 4,
    templateHash: "abc123",
    image: "python:3.12",
    createdAt,
  });
});

test("sandboxes without our tags are not ours", () => {
  assert.equal(infoFromTags("sb-1", {}), undefined);
  const tags = sandboxTags("n", template, new Date());
  assert.equal(infoFromTags("sb-1", { ...tags, "hermes-managed-by": "someone-else" }), undefined);
  assert.equal(infoFromTags("sb-1", { ...tags, "hermes-slots": "many" }), undefined);
});

test("Modal sandbox names: at most 64 of [A-Za-z0-9._-]", () => {
  assert.ok(isValidSandboxName("pool-a.0_x"));
  assert.ok(!isValidSandboxName(""));
  assert.ok(!isValidSandboxName("ns/pool"));
  assert.ok(!isValidSandboxName("x".repeat(65)));
});

test("timeouts become whole seconds, rounded up, at least one", () => {
  assert.equal(wholeSecondsMs(1), 1000);
  assert.equal(wholeSecondsMs(1000), 1000);
  assert.equal(wholeSecondsMs(1001), 2000);
  assert.equal(wholeSecondsMs(0), 1000);
});

test("exec argv wraps the slot plan in coreutils timeout with sub-second precision", () => {
  const argv = execArgv({ file: "bwrap", args: ["--die-with-parent", "--", "bash", "-c", "x"], cwd: "/w", env: {} }, 1500);
  assert.deepEqual(argv, ["timeout", "-k", "2", "1.500", "bwrap", "--die-with-parent", "--", "bash", "-c", "x"]);
});

test("prepare creates the cache and every slot dir in one command and prints the root", () => {
  const argv = prepareArgv(3);
  assert.deepEqual(argv.slice(0, 2), ["bash", "-c"]);
  assert.match(argv[2] ?? "", /mkdir -p -- "\$@" && pwd -P/);
  assert.deepEqual(argv.slice(4), ["cache", "slots/0", "slots/1", "slots/2"]);
});

test("the SDK logger's alternating key/values become pino fields", () => {
  const seen: Array<[string, unknown, string]> = [];
  const record = (level: string) => (fields: unknown, message: string) => seen.push([level, fields, message]);
  const fake = { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") } as unknown as Logger;
  const adapter = sdkLogger(fake);
  adapter.warn("retrying", "attempt", 2, "delay_ms", 100);
  adapter.debug("plain");
  assert.deepEqual(seen, [
    ["warn", { attempt: 2, delay_ms: 100 }, "retrying"],
    ["debug", {}, "plain"],
  ]);
});

test("MODAL_MAX_THROTTLE_WAIT is read as the SDK reads it; an empty or unusable value keeps the 60 s bound", () => {
  assert.equal(maxThrottleWaitSecs(undefined), 60);
  assert.equal(maxThrottleWaitSecs("0"), 0, "0 turns throttle retries off, as in the SDK");
  assert.equal(maxThrottleWaitSecs("15"), 15);
  // Number("") is 0 (retries off) and Number("soon") is NaN, which the SDK takes as no bound at all.
  for (const unusable of ["", "soon", "-1"]) assert.equal(maxThrottleWaitSecs(unusable), 60, unusable);
});
