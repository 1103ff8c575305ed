import { isSandboxError, SandboxError } from "../../base/errors.ts";
import type { ExecRequest, ExecResult, SandboxHealth, SandboxRef } from "../types.ts";
import type { SandboxServerClient } from "./client.ts";

/**
 * The slot calls of a backend whose sandboxes each run the sandbox server (Nomad allocations, Kubernetes pods): every
 * call goes to the server of the sandbox's pinned target. A backend says how to find that target and, when a call
 * fails to connect, whether the sandbox is lost (its scheduler's view), so the caller learns "gone", not "transient".
 */
export abstract class ServedSlots<Target extends { server: SandboxServerClient }> {
  protected abstract target(sandboxId: string): Promise<Target>;
  /** Why the sandbox is lost after a failed call to `target`'s server, or undefined when it still stands. */
  protected abstract lostReason(sandboxId: string, target: Target): Promise<string | undefined>;
  protected abstract healthTimeoutMs(): number;

  protected async withServer<T>(sandbox: SandboxRef, call: (server: SandboxServerClient) => Promise<T>): Promise<T> {
    const target = await this.target(sandbox.id);
    try {
      return await call(target.server);
    } catch (error) {
      if (!isSandboxError(error) || (error.kind !== "gone" && error.kind !== "transient")) throw error;
      const lost = await this.lostReason(sandbox.id, target);
      if (lost !== undefined) throw new SandboxError("gone", `sandbox ${sandbox.id}: ${lost}`, { cause: error });
      throw error;
    }
  }

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
