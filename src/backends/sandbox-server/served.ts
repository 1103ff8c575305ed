import type { ExecRequest, ExecResult, SandboxHealth, SandboxRef } from "../types.ts";
import type { SandboxServerClient } from "./client.ts";

/**
 * The slot calls of a backend whose sandboxes each run the sandbox server (Nomad allocations, Kubernetes pods): every
 * call goes to that sandbox's server. A backend says how to reach it, and what a failed call means, in `withServer`.
 */
export abstract class ServedSlots {
  protected abstract withServer<T>(sandbox: SandboxRef, call: (server: SandboxServerClient) => Promise<T>): Promise<T>;
  protected abstract healthTimeoutMs(): number;

  exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    return this.withServer(sandbox, (server) => server.exec(request));
  }

  readFile(sandbox: SandboxRef, slot: number, path: string): Promise<Uint8Array> {
    return this.withServer(sandbox, (server) => server.readFile(slot, path));
  }

  writeFile(sandbox: SandboxRef, slot: number, path: string, data: Uint8Array | string): Promise<void> {
    return this.withServer(sandbox, (server) => server.writeFile(slot, path, data));
  }

  resetSlot(sandbox: SandboxRef, slot: number): Promise<void> {
    return this.withServer(sandbox, (server) => server.reset(slot));
  }

  async health(sandbox: SandboxRef): Promise<SandboxHealth> {
    const answer = await this.withServer(sandbox, (server) => server.health(this.healthTimeoutMs()));
    return {
      ok: answer.status === "ok",
      isolation: answer.isolation,
      ...(answer.message === undefined ? {} : { message: answer.message }),
    };
  }
}
