import { writeFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { startEgress } from "./egress.ts";

/**
 * What a bwrap slot command must be born into, set up by the spawner while bwrap builds the sandbox: bwrap writes
 * `{"child-pid": N}` (the sandbox's init, in the host's pid namespace) on its --info-fd once the namespaces exist,
 * and runs the command only when a byte arrives on its --block-fd. Meanwhile bwrap and that init join the slot's
 * cgroups (so the command and all it starts are born inside: no process escapes) and the egress policy's network
 * comes up (egress.ts).
 */
export interface HandOver {
  /** cgroup.procs files of the slot's cgroups (cgroups.ts). */
  cgroupProcs?: string[];
  egress?: { userNamespace: boolean };
}

export const HAND_OVER_INFO_FD = 3;
export const HAND_OVER_BLOCK_FD = 4;
/** The bwrap options that make it hand over. */
export const HAND_OVER_ARGS = ["--info-fd", String(HAND_OVER_INFO_FD), "--block-fd", String(HAND_OVER_BLOCK_FD)];

/**
 * Sets up what the hand-over asks for, given bwrap's info fd and its own pid; resolves to what stops it (the
 * network) once the command may run.
 */
export async function prepareHandOver(handOver: HandOver, info: Readable, bwrapPid: number): Promise<() => void> {
  const sandboxPid = await readSandboxPid(info);
  const { cgroupProcs = [], egress } = handOver;
  const joined = (async () => {
    for (const file of cgroupProcs) for (const pid of [bwrapPid, sandboxPid]) await writeFile(file, String(pid));
  })();
  const network = egress === undefined ? Promise.resolve(() => undefined) : startEgress(sandboxPid, egress.userNamespace);
  const [joinedResult, networkResult] = await Promise.allSettled([joined, network]);
  if (networkResult.status === "fulfilled" && joinedResult.status === "fulfilled") return networkResult.value;
  if (networkResult.status === "fulfilled") networkResult.value();
  throw joinedResult.status === "rejected" ? joinedResult.reason : (networkResult as PromiseRejectedResult).reason;
}

/** Reads bwrap's info JSON until it holds the sandbox's pid. */
function readSandboxPid(info: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (chunk: Buffer): void => {
      text += chunk.toString("utf8");
      const match = /"child-pid"\s*:\s*(\d+)/.exec(text);
      if (match?.[1] === undefined) return;
      info.off("data", onData);
      resolve(Number(match[1]));
    };
    info.on("data", onData);
    info.once("error", reject);
    info.once("close", () => reject(new Error("bwrap exited before it made the slot's namespaces")));
  });
}
