/**
 * A sandbox of the real local backend that the attack suites (slot-attacks-*.test.ts) run a hostile model's
 * terminal commands in, and what they check a command left behind with.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { slotDirectory } from "../../../src/backends/isolation.ts";
import { LocalBackend } from "../../../src/backends/local/backend.ts";
import type { ExecResult, IsolationPolicy, SandboxInfo } from "../../../src/backends/types.ts";
import { contractTemplate } from "./contract.ts";

export interface AttackedSandbox {
  backend: LocalBackend;
  sandbox: SandboxInfo;
  /** A slot command (slot 0 and 30 s unless told). */
  exec(command: string, options?: { slot?: number; timeoutMs?: number }): Promise<ExecResult>;
  /** The host path of a slot's workspace (slot 0 unless told). */
  workspace(slot?: number): string;
}

/** A two-slot sandbox in `<rootDir>/<name>`. */
export async function openAttackedSandbox(rootDir: string, name: string, isolation: IsolationPolicy): Promise<AttackedSandbox> {
  const backend = await LocalBackend.open({ rootDir: join(rootDir, name), isolation });
  const sandbox = await backend.create(name, contractTemplate({ pool: "attacks" }));
  return {
    backend,
    sandbox,
    exec: (command, { slot = 0, timeoutMs = 30_000 } = {}) => backend.exec(sandbox, { slot, command, timeoutMs }),
    workspace: (slot = 0) => slotDirectory(join(rootDir, name, sandbox.id), slot),
  };
}

/** A daemon that appends to `beat` in the workspace ten times a second, detached from the command's session. */
export const DAEMON = "setsid sh -c 'while :; do echo x >> beat; sleep 0.1; done' >/dev/null 2>&1 < /dev/null &";

/** Whether `beat` still grows: a surviving daemon does. */
export async function stillBeating(workspace: string): Promise<boolean> {
  const size = async () => (await stat(join(workspace, "beat")).catch(() => ({ size: 0 }))).size;
  await sleep(300); // a write already under way lands
  const before = await size();
  await sleep(700);
  return (await size()) !== before;
}
