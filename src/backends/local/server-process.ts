import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { getPriority, setPriority } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { SandboxServerClient } from "../sandbox-server/client.ts";
import type { IsolationMode, NetworkPolicy } from "../types.ts";
import { slotLimitArgs, type SlotLimits } from "../slot-limits.ts";
import { errorMessage, SandboxError } from "../../base/errors.ts";

export interface ServerProcessOptions {
  /** argv that starts this CLI (see launcher.ts). */
  launcher: readonly string[];
  /** The sandbox directory: the server keeps `slots/<n>` and `cache` in it. */
  root: string;
  slots: number;
  isolation: IsolationMode;
  network: NetworkPolicy;
  slotLimits?: SlotLimits | undefined;
  /** Where the server listens; its directory is reachable only by this uid, the token guards the rest. */
  socketPath: string;
  /** The slots' base environment (the pool template's env). */
  env?: Record<string, string>;
  /** An OCI image's rootfs the slots see as `/` (image-view.ts); the server adds the host's helpers. */
  image?: { root: string; env: Record<string, string> };
  /** Under bwrap, where each slot's workspace is mounted (default /workspace). */
  workdir?: string;
  readyTimeoutMs: number;
}

const STOP_GRACE_MS = 5_000;
/**
 * The server and the slot commands it starts run at a lower CPU priority than the process that started them: on a
 * saturated host the controller still gets the CPU for its timers, lease renewals and every runner's calls.
 */
const SERVER_NICENESS = 10;

/**
 * One local sandbox's `sandbox-server` child (the same server a Nomad allocation runs), reached over a unix socket
 * with a token of its own. The token and the slots' env go over stdin, never argv or the environment; the child exits
 * when its stdin closes, so sandboxes do not outlive the process that started them.
 */
export class SandboxServerProcess {
  readonly client: SandboxServerClient;
  private readonly child: ChildProcess;
  private readonly exited: Promise<unknown>;
  /** Set once the child has exited: "exited (<exit code or signal>)". */
  exitReason: string | undefined;

  private constructor(child: ChildProcess, client: SandboxServerClient) {
    this.child = child;
    this.client = client;
    this.exited = once(child, "exit").then(
      ([code, signal]) => {
        this.exitReason = `exited (${signal === null ? `exit code ${String(code)}` : `signal ${String(signal)}`})`;
      },
      (error: unknown) => {
        this.exitReason = `could not start (${errorMessage(error)})`; // e.g. a launcher that does not exist
      },
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts the server and waits until it answers /health; a server that exits or never answers first is a transient error. */
  static async start(options: ServerProcessOptions): Promise<SandboxServerProcess> {
    const token = randomBytes(32).toString("base64url");
    const [program, ...launcherArgs] = options.launcher;
    if (program === undefined) throw new SandboxError("configuration", "empty sandbox-server launcher");
    const args = ["sandbox-server", "--socket", options.socketPath, "--slots", String(options.slots), "--data-dir", options.root];
    const child = spawn(
      program,
      [
        ...launcherArgs,
        ...args,
        "--isolation",
        options.isolation,
        "--network",
        options.network,
        ...slotLimitArgs(options.slotLimits),
        "--parent-stdin",
      ],
      // A session of its own: under autogroup scheduling the servers do not share the raised CPU weight of this
      // process's session (cpu-priority.ts); they still exit with it, when their stdin closes.
      { stdio: ["pipe", "inherit", "inherit"], detached: true },
    );
    child.stdin?.on("error", () => undefined); // a child that died first: its exit says why
    if (child.pid !== undefined) setPriority(child.pid, Math.min(19, getPriority() + SERVER_NICENESS));
    const settings = {
      token,
      ...(options.env === undefined ? {} : { slotEnv: options.env }),
      ...(options.image === undefined ? {} : { image: options.image }),
      workdir: options.workdir,
    };
    child.stdin?.write(`${JSON.stringify(settings)}\n`);
    const server = new SandboxServerProcess(
      child,
      new SandboxServerClient({ baseUrl: "http://sandbox", socketPath: options.socketPath, token }),
    );
    await server.waitReady(options.readyTimeoutMs);
    return server;
  }

  /** SIGTERM (the server kills its slots' processes), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    if (this.exitReason === undefined) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    await this.client.close();
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let lastError: unknown;
    for (let delayMs = 20; performance.now() < deadline; delayMs = Math.min(delayMs * 2, 250)) {
      if (this.exitReason !== undefined) break;
      try {
        await this.client.health(Math.max(1, Math.min(2_000, deadline - performance.now())));
        return;
      } catch (error) {
        lastError = error;
      }
      await Promise.race([sleep(delayMs), this.exited]);
    }
    const reason = this.exitReason ?? `not answering: ${errorMessage(lastError)}`;
    await this.stop();
    throw new SandboxError("transient", `sandbox server ${this.child.pid ?? "?"} ${reason}`);
  }
}
