/**
 * How the fake starts a task's process the way Nomad's raw_exec driver does (github.com/hashicorp/nomad at aa026cc):
 * its own process group, and client/taskenv/env.go for the NOMAD_* variables, ${...} interpolation and
 * NOMAD_PORT_<label> (the mapped port). Differences: docs/nomad-fake.md.
 */
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import type { AllocRecord, Json } from "./state.ts";

export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** The runtime variables Nomad gives a task and interpolates in its Config and Env. */
export function nomadVariables(alloc: AllocRecord, task: string, allocDir: string, taskDir: string): Record<string, string> {
  const vars: Record<string, string> = {
    NOMAD_ALLOC_DIR: allocDir,
    NOMAD_TASK_DIR: join(taskDir, "local"),
    NOMAD_SECRETS_DIR: join(taskDir, "secrets"),
    NOMAD_ALLOC_ID: alloc.ID,
    NOMAD_ALLOC_NAME: alloc.Name,
    NOMAD_ALLOC_INDEX: /\[(\d+)\]$/.exec(alloc.Name)?.[1] ?? "0",
    NOMAD_JOB_ID: alloc.JobID,
    NOMAD_JOB_NAME: alloc.JobID,
    NOMAD_GROUP_NAME: alloc.TaskGroup,
    NOMAD_TASK_NAME: task,
    NOMAD_NAMESPACE: alloc.Namespace,
    NOMAD_REGION: "global",
    NOMAD_DC: "dc1",
  };
  for (const port of (alloc.AllocatedResources.Shared as Json).Ports as { Label: string; Value: number; To: number; HostIP: string }[]) {
    // client/taskenv/env.go: NOMAD_PORT_<label> is the mapped port (`To`) when one is set, else the host port.
    vars[`NOMAD_PORT_${port.Label}`] = String(port.To > 0 ? port.To : port.Value);
    vars[`NOMAD_HOST_PORT_${port.Label}`] = String(port.Value);
    vars[`NOMAD_IP_${port.Label}`] = port.HostIP;
    vars[`NOMAD_ADDR_${port.Label}`] = `${port.HostIP}:${port.Value}`;
  }
  return vars;
}

export function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(?:env\.)?([A-Za-z0-9_]+)\}/g, (whole, name: string) => vars[name] ?? whole);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
