import assert from "node:assert/strict";
import { test } from "node:test";
import { validateSandboxPoolSpec } from "../../../src/api/index.ts";
import { describeSlotLimits, findCgroupPlace, joinCgroupsFirst, limitFiles, parseProcCgroup } from "../../../src/backends/cgroups.ts";
import { isolationPolicy } from "../../../src/backends/factory.ts";
import { buildSlotCommand } from "../../../src/backends/isolation.ts";
import { slotLimitArgs } from "../../../src/backends/slot-limits.ts";

const V1_PROC = "8:pids:/\n4:memory:/job/42\n2:cpu,cpuacct:/\n6:freezer:/\n0::/\n";

test("/proc/self/cgroup: each controller of a v1 line, and the unified line under ''", () => {
  const paths = parseProcCgroup(V1_PROC);
  assert.equal(paths.get("memory"), "/job/42");
  assert.equal(paths.get("cpu"), "/");
  assert.equal(paths.get("cpuacct"), "/");
  assert.equal(paths.get(""), "/");
});

test("v2 when /sys/fs/cgroup is unified and memory, pids and cpu reach this cgroup; else it says which are missing", () => {
  const unified = (path: string) => path === "/sys/fs/cgroup/cgroup.controllers";
  const delegated = findCgroupPlace("0::/kubepods/pod1/c1\n", unified, () => "cpuset cpu io memory pids\n");
  assert.deepEqual(delegated, { version: 2, parents: { "": "/sys/fs/cgroup/kubepods/pod1/c1" } });
  const partial = findCgroupPlace("0::/user.slice\n", unified, () => "memory pids\n");
  assert.deepEqual(partial, { unavailable: "cgroup v2 does not delegate cpu to this process (/sys/fs/cgroup/user.slice)" });
});

test("v1: the parent in each controller's hierarchy", () => {
  const mounted = (path: string) => ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"].includes(path);
  const place = findCgroupPlace(V1_PROC, mounted, () => "");
  assert.deepEqual(place, {
    version: 1,
    parents: { memory: "/sys/fs/cgroup/memory/job/42", pids: "/sys/fs/cgroup/pids/", cpu: "/sys/fs/cgroup/cpu/" },
  });
  assert.deepEqual(
    findCgroupPlace("8:pids:/\n", mounted, () => ""),
    { unavailable: "no cgroup v2, and cgroup v1 lacks memory, cpu" },
  );
});

test("limit files: v2 in one directory, v1 per controller; swap capped with memory; CPU as a quota per 100 ms", () => {
  const limits = { memoryBytes: 256 * 1024 ** 2, pids: 64, cpuMillis: 1500 };
  assert.deepEqual(limitFiles(2, "", limits), [
    ["memory.max", "268435456"],
    ["memory.swap.max", "0"],
    ["pids.max", "64"],
    ["cpu.max", "150000 100000"],
  ]);
  assert.deepEqual(limitFiles(1, "cpu", limits), [
    ["cpu.cfs_period_us", "100000"],
    ["cpu.cfs_quota_us", "150000"],
  ]);
  assert.deepEqual(limitFiles(1, "pids", {}), []);
});

test("a wrapped plan joins every cgroup before it execs the command, and does not run it if it cannot join", () => {
  const plan = buildSlotCommand({ sandboxRoot: "/s", slot: 0, command: "true", isolation: "bwrap", slotUser: "setpriv" });
  const wrapped = joinCgroupsFirst(plan, ["/a/cgroup.procs", "/b/cgroup.procs"]);
  assert.equal(wrapped.file, "/bin/sh");
  assert.deepEqual(wrapped.args.slice(2, 7), ["sh", "/a/cgroup.procs", "/b/cgroup.procs", "--", "bwrap"]);
  assert.deepEqual(wrapped.args.slice(7), plan.args);
  assert.match(wrapped.args[1]!, /exit 125/);
  assert.deepEqual([wrapped.env, wrapped.cwd], [plan.env, plan.cwd]);
});

test("egress: bwrap hands over its pid and waits for the network; trusted steps keep the sandbox's network", () => {
  const spec = { sandboxRoot: "/s", slot: 0, command: "true", isolation: "bwrap", slotUser: "setpriv", network: "egress" } as const;
  const plan = buildSlotCommand(spec);
  assert.deepEqual(plan.handOver, { egress: { userNamespace: false } });
  assert.ok(plan.args.join(" ").includes("--unshare-net --info-fd 3 --block-fd 4"));
  const trusted = buildSlotCommand({ ...spec, trusted: true });
  assert.equal(trusted.handOver, undefined);
  assert.ok(!trusted.args.includes("--unshare-net"));
});

test("the pool's limits: what spec.isolation.limits leaves unset comes from the sandbox's resources per slot", () => {
  const parsed = validateSandboxPoolSpec({ backend: "local", slotsPerSandbox: 4, resources: { cpu: "2", memory: "4Gi" } });
  assert.ok(parsed.ok);
  assert.deepEqual(isolationPolicy(parsed.value).slotLimits, {
    memoryBytes: 1024 ** 3,
    cpuMillis: 2000,
    pids: 512,
  });
  const asked = validateSandboxPoolSpec({
    backend: "local",
    isolation: { limits: { memory: "512Mi", cpu: "500m", pids: 100, workspace: "10Gi" } },
  });
  assert.ok(asked.ok);
  const limits = isolationPolicy(asked.value).slotLimits;
  assert.deepEqual(slotLimitArgs(limits), [
    ...["--slot-memory", String(512 * 1024 ** 2), "--slot-pids", "100", "--slot-cpu", "500"],
    ...["--slot-workspace", String(10 * 1024 ** 3)],
  ]);
});

test("health names the limits and whether a cgroup holds them", () => {
  const limits = { memoryBytes: 128 * 1024 ** 2, pids: 64 };
  assert.equal(
    describeSlotLimits(limits, { unavailable: "no cgroup v2" }),
    "no per-slot cgroup (no cgroup v2): memory 128 MiB, 64 processes not enforced",
  );
  assert.equal(describeSlotLimits({}, { unavailable: "x" }), "no per-slot memory, process or CPU limit asked for");
});
