import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * The "egress" network policy: a slot command in a network namespace of its own (bwrap --unshare-net) that reaches
 * the outside through slirp4netns, a user-mode network stack on the trusted side that opens ordinary sockets for the
 * slot's connections. With --disable-host-loopback the slot cannot reach the host's 127.0.0.1 (neither through the
 * gateway address 10.0.2.2, nor through its own 127.0.0.1, which is the namespace's own loopback), so host-only
 * services and a sandbox server bound there stay out of reach; every other address the host can reach is reachable.
 *
 * The network is up before the command's first connect: bwrap waits for it (hand-over.ts).
 */

const READY_TIMEOUT_MS = 10_000;

/**
 * Waits until bwrap has set up the namespace's loopback (127.0.0.1 in its routing tables). bwrap reports the pid
 * while its child still configures lo, and slirp4netns brings lo up too: when it comes first, the kernel gives lo its
 * address on the way up and bwrap's own RTM_NEWADDR fails (the command never runs).
 */
async function loopbackConfigured(sandboxPid: number): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  // A sandbox that is already gone fails the read: its exit tells why.
  while (!(await readFile(`/proc/${sandboxPid}/net/fib_trie`, "utf8")).includes("127.0.0.1")) {
    if (performance.now() > deadline) throw new Error("the slot's loopback was not configured in time");
    await sleep(1);
  }
}

/**
 * Starts slirp4netns for the network namespace of `sandboxPid` (entering its user namespace first when bwrap made
 * one) and waits until tap0 is configured; the returned function stops it.
 */
export async function startEgress(sandboxPid: number, userNamespace: boolean): Promise<() => void> {
  await loopbackConfigured(sandboxPid);
  const args = [
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    ...(userNamespace ? [`--userns-path=/proc/${sandboxPid}/ns/user`] : []),
    `--ready-fd=3`,
    String(sandboxPid),
    "tap0",
  ];
  const slirp = spawn("slirp4netns", args, { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  const stop = (): void => {
    slirp.kill("SIGKILL");
  };
  let stderr = "";
  slirp.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-2000)));
  const ready = slirp.stdio[3] as Readable;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("slirp4netns not ready in time")), READY_TIMEOUT_MS);
      ready.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
      slirp.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      slirp.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`slirp4netns exited (${code ?? signal})${stderr ? `: ${stderr.trim()}` : ""}`));
      });
    });
  } catch (error) {
    stop();
    throw error;
  }
  return stop;
}
