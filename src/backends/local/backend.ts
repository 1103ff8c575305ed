import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { logger } from "../../base/log.ts";
import { probeIsolation, type IsolationProbe } from "../isolation.ts";
import type {
  IsolationPolicy,
  NetworkPolicy,
  ExecRequest,
  ExecResult,
  SandboxBackend,
  SandboxHealth,
  SandboxInfo,
  SandboxRef,
  SandboxTemplate,
} from "../types.ts";
import { classifyLocalError } from "./errors.ts";
import { SlotHost } from "./slot-host.ts";
import { SandboxError } from "../../base/errors.ts";
import { realClock, type Clock } from "../../base/clock.ts";

const log = logger("backend-local");
const METADATA_FILE = "sandbox.json";

/** What a sandbox directory remembers about itself, so `list` can rebuild state after a restart. */
interface SandboxMetadata {
  name: string;
  pool: string;
  slots: number;
  templateHash: string;
  createdAt: string;
  lifetimeSeconds: number;
  idleTimeoutSeconds: number;
  env?: Record<string, string>;
}

export interface LocalBackendOptions {
  /** Sandboxes live in `<rootDir>/<pool>/<name>`. */
  rootDir: string;
  /** The pool's setting; bwrap with its own network by default. Under bwrap, open fails when bwrap cannot run. */
  isolation?: IsolationPolicy;
  /** Injectable for tests of lifetime and idle expiry. */
  clock?: Clock;
}

/**
 * Sandboxes are directories on this machine and slot commands real processes (under bwrap when it works).
 * Lifetime and idle timeout are enforced when `list` runs (the pool manager lists on every pass).
 */
export class LocalBackend implements SandboxBackend {
  readonly kind = "local" as const;
  readonly rootDir: string;
  readonly isolation: IsolationProbe;
  private readonly network: NetworkPolicy;
  private readonly clock: Clock;
  private readonly hosts = new Map<string, SlotHost>();
  private readonly lastActivity = new Map<string, number>();

  private constructor(options: LocalBackendOptions, isolation: IsolationProbe) {
    this.rootDir = options.rootDir;
    this.isolation = isolation;
    this.network = options.isolation?.network ?? "none";
    this.clock = options.clock ?? realClock;
  }

  /** Probes isolation once (failing closed under bwrap); "none", asked for, is logged here and reported by `health`. */
  static async open(options: LocalBackendOptions): Promise<LocalBackend> {
    const policy = options.isolation ?? { mode: "bwrap", network: "none" };
    const isolation = await probeIsolation(policy.mode, policy.network);
    if (isolation.isolation === "none") log.warn({ reason: isolation.message }, "slot isolation is off");
    else
      log.info(
        { isolation: isolation.isolation, slotUser: isolation.slotUser, reason: isolation.message, limits: isolation.limits },
        "slot isolation probed",
      );
    await mkdir(options.rootDir, { recursive: true });
    return new LocalBackend(options, isolation);
  }

  async create(name: string, template: SandboxTemplate): Promise<SandboxInfo> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new SandboxError("configuration", `invalid sandbox name ${name}`);
    const id = sandboxId(template.pool, name);
    const dir = this.directory(id);
    const existing = await this.readMetadata(id).catch(() => undefined);
    if (existing !== undefined) return toInfo(id, existing);
    const metadata: SandboxMetadata = {
      name,
      pool: template.pool,
      slots: template.slots,
      templateHash: template.templateHash,
      createdAt: new Date(this.clock.now()).toISOString(),
      lifetimeSeconds: template.lifetimeSeconds,
      idleTimeoutSeconds: template.idleTimeoutSeconds,
      ...(template.env === undefined ? {} : { env: template.env }),
    };
    try {
      await this.host(id, metadata).prepare();
      // Written last and atomically: a directory without metadata is a create that did not finish.
      const temporary = join(dir, `${METADATA_FILE}.${process.pid}.tmp`);
      await writeFile(temporary, JSON.stringify(metadata));
      await rename(temporary, join(dir, METADATA_FILE));
    } catch (error) {
      throw classifyLocalError(error, `create ${id}`, "transient");
    }
    this.lastActivity.set(id, this.clock.now());
    return toInfo(id, metadata);
  }

  async list(pool: string): Promise<SandboxInfo[]> {
    const poolDir = join(this.rootDir, encodeURIComponent(pool));
    const names = await readdir(poolDir).catch(() => [] as string[]);
    const infos: SandboxInfo[] = [];
    for (const name of names) {
      const id = sandboxId(pool, name);
      const metadata = await this.readMetadata(id).catch(() => undefined);
      if (metadata === undefined) continue;
      const expired = this.expiry(id, metadata);
      if (expired !== undefined) {
        log.info({ sandbox: id, reason: expired }, "terminating expired sandbox");
        await this.terminate({ id, name });
        continue;
      }
      infos.push(toInfo(id, metadata));
    }
    return infos;
  }

  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    return (await this.live(sandbox)).exec(request);
  }

  async readFile(sandbox: SandboxRef, slot: number, path: string): Promise<Uint8Array> {
    return (await this.live(sandbox)).readFile(slot, path);
  }

  async writeFile(sandbox: SandboxRef, slot: number, path: string, data: Uint8Array | string): Promise<void> {
    return (await this.live(sandbox)).writeFile(slot, path, data);
  }

  async resetSlot(sandbox: SandboxRef, slot: number): Promise<void> {
    return (await this.live(sandbox)).reset(slot);
  }

  async health(sandbox: SandboxRef): Promise<SandboxHealth> {
    await this.live(sandbox);
    const message = [this.isolation.message, this.isolation.limits].filter((part) => part !== undefined).join("; ");
    return { ok: true, isolation: this.isolation.isolation, ...(message ? { message } : {}) };
  }

  async terminate(sandbox: SandboxRef): Promise<void> {
    this.hosts.get(sandbox.id)?.killAll();
    this.hosts.delete(sandbox.id);
    this.lastActivity.delete(sandbox.id);
    try {
      await rm(this.directory(sandbox.id), { recursive: true, force: true });
    } catch (error) {
      throw classifyLocalError(error, `terminate ${sandbox.id}`, "transient");
    }
  }

  async close(): Promise<void> {
    for (const host of this.hosts.values()) host.killAll();
    this.hosts.clear();
  }

  private async live(sandbox: SandboxRef): Promise<SlotHost> {
    this.lastActivity.set(sandbox.id, this.clock.now());
    const cached = this.hosts.get(sandbox.id);
    if (cached !== undefined) return cached;
    const metadata = await this.readMetadata(sandbox.id).catch((error: unknown) => {
      throw classifyLocalError(error, `sandbox ${sandbox.id}`);
    });
    return this.host(sandbox.id, metadata);
  }

  private host(id: string, metadata: SandboxMetadata): SlotHost {
    let host = this.hosts.get(id);
    if (host === undefined) {
      host = new SlotHost({
        root: this.directory(id),
        slots: metadata.slots,
        isolation: this.isolation.isolation,
        slotUser: this.isolation.slotUser,
        network: this.network,
        env: metadata.env,
      });
      this.hosts.set(id, host);
    }
    return host;
  }

  private expiry(id: string, metadata: SandboxMetadata): string | undefined {
    const now = this.clock.now();
    const created = Date.parse(metadata.createdAt);
    if (metadata.lifetimeSeconds > 0 && now - created > metadata.lifetimeSeconds * 1000) return "lifetime";
    const busy = (this.hosts.get(id)?.runningCount() ?? 0) > 0;
    const lastActive = this.lastActivity.get(id) ?? created;
    if (!busy && metadata.idleTimeoutSeconds > 0 && now - lastActive > metadata.idleTimeoutSeconds * 1000) return "idle";
    return undefined;
  }

  private directory(id: string): string {
    return join(this.rootDir, id);
  }

  private async readMetadata(id: string): Promise<SandboxMetadata> {
    return JSON.parse(await readFile(join(this.directory(id), METADATA_FILE), "utf8")) as SandboxMetadata;
  }
}

/** Ids are the sandbox's path under the root, so any process can find a sandbox from its ref alone. */
function sandboxId(pool: string, name: string): string {
  return `${encodeURIComponent(pool)}/${name}`;
}

function toInfo(id: string, metadata: SandboxMetadata): SandboxInfo {
  return {
    id,
    name: metadata.name,
    pool: metadata.pool,
    phase: "ready",
    slots: metadata.slots,
    templateHash: metadata.templateHash,
    createdAt: new Date(metadata.createdAt),
  };
}
