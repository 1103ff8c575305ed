import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
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
import { ImageCache, isImageReference } from "../images/unpack.ts";
import { imageWorkdir } from "../image-view.ts";
import type { SlotLimits } from "../slot-limits.ts";
import { unmountUnder } from "./workspace-volume.ts";
import { SlotCgroups } from "../cgroups.ts";
import { SandboxServerProcess } from "./server-process.ts";
import { outrankSlotSessions } from "./cpu-priority.ts";
import { cliLauncher } from "../launcher.ts";
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
  image?: string;
  createdAt: string;
  lifetimeSeconds: number;
  idleTimeoutSeconds: number;
  env?: Record<string, string>;
  /** Set for an OCI image (isImageReference): its unpacked root, which slots see as `/`, and its Env. */
  rootfs?: UnpackedRoot;
  /** Under bwrap, where the slots' workspaces are mounted: the image's work dir, or the template's; else /workspace. */
  workdir?: string;
}

interface UnpackedRoot {
  root: string;
  env: Record<string, string>;
  workingDir: string;
}

export interface LocalBackendOptions {
  /** Sandboxes live in `<rootDir>/<pool>/<name>`. */
  rootDir: string;
  /** The pool's setting; bwrap with its own network by default. Under bwrap, open fails when bwrap cannot run. */
  isolation?: IsolationPolicy;
  /** Injectable for tests of lifetime and idle expiry. */
  clock?: Clock;
  /** argv that starts this CLI, whose `sandbox-server` serves each sandbox (default: this checkout's). */
  launcher?: readonly string[];
  /** How long a sandbox server may take to answer /health after it starts. */
  serverReadyTimeoutMs?: number;
}

/**
 * Sandboxes are directories on this machine, each served by its own `sandbox-server` child process (the server a
 * Nomad allocation runs) on a unix socket: this process never forks per command. Slot commands are real processes
 * under bwrap when it works. A server that dies makes its sandbox gone (calls fail "gone", `list` says failed) and
 * the pool replaces it; a sandbox found on disk with no server of this process (after a restart) gets a new one,
 * keeping its workspaces. Lifetime and idle timeout are enforced when `list` runs (the pool manager lists on every pass).
 */
export class LocalBackend implements SandboxBackend {
  readonly kind = "local" as const;
  readonly rootDir: string;
  readonly isolation: IsolationProbe;
  private readonly network: NetworkPolicy;
  private readonly slotLimits: SlotLimits | undefined;
  private readonly clock: Clock;
  private readonly launcher: readonly string[];
  private readonly readyTimeoutMs: number;
  /** Only this uid can enter it: the servers' sockets. */
  private readonly socketDir: string;
  private socketCount = 0;
  private readonly servers = new Map<string, Promise<SandboxServerProcess>>();
  private readonly inFlight = new Map<string, number>();
  private readonly lastActivity = new Map<string, number>();
  private readonly images: ImageCache;

  private constructor(options: LocalBackendOptions, isolation: IsolationProbe, socketDir: string) {
    this.rootDir = options.rootDir;
    this.isolation = isolation;
    this.network = options.isolation?.network ?? "none";
    this.slotLimits = options.isolation?.slotLimits;
    this.clock = options.clock ?? realClock;
    this.launcher = options.launcher ?? cliLauncher;
    this.readyTimeoutMs = options.serverReadyTimeoutMs ?? 30_000;
    this.socketDir = socketDir;
    // Beside the pools' directories; a pool name (a DNS name) never starts with a dot.
    this.images = new ImageCache(join(options.rootDir, ".images"), { rootless: process.getuid?.() !== 0 });
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
    const priority = await outrankSlotSessions();
    // Under autogroup scheduling, with nothing raised, a busy host's slot commands delay this process's event loop.
    if (priority.reason !== undefined) log.info({ reason: priority.reason }, "slot commands' sessions weigh as much as this one");
    await mkdir(options.rootDir, { recursive: true });
    // Under the temporary directory, not the root: a socket path has at most 107 bytes.
    return new LocalBackend(options, isolation, await mkdtemp(join(tmpdir(), "hermes-sockets-")));
  }

  async create(name: string, template: SandboxTemplate): Promise<SandboxInfo> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new SandboxError("configuration", `invalid sandbox name ${name}`);
    const id = sandboxId(template.pool, name);
    const dir = this.directory(id);
    const existing = await this.readMetadata(id).catch(() => undefined);
    if (existing !== undefined) return toInfo(id, existing);
    const rootfs = await this.unpackedRoot(template);
    const workdir = rootfs === undefined ? template.workdir : imageWorkdir(rootfs.workingDir, template.workdir);
    const metadata: SandboxMetadata = {
      name,
      pool: template.pool,
      slots: template.slots,
      templateHash: template.templateHash,
      image: template.image,
      createdAt: new Date(this.clock.now()).toISOString(),
      lifetimeSeconds: template.lifetimeSeconds,
      idleTimeoutSeconds: template.idleTimeoutSeconds,
      ...(template.env === undefined ? {} : { env: template.env }),
      ...(rootfs === undefined ? {} : { rootfs }),
      ...(workdir === undefined ? {} : { workdir }),
    };
    try {
      await mkdir(dir, { recursive: true });
      await this.server(id, metadata);
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

  /**
   * The unpacked image of a template whose image is an OCI reference (`oci:`, `oci-archive:`, `docker-archive:`);
   * any other name (the pool's default `python:3.11-slim`, a registry name) means the host's system dirs, as before.
   */
  private async unpackedRoot(template: SandboxTemplate): Promise<UnpackedRoot | undefined> {
    if (!isImageReference(template.image)) return undefined;
    if (this.isolation.isolation !== "bwrap") {
      throw new SandboxError(
        "configuration",
        `image ${template.image}: a local sandbox shows an image to its slots only under isolation bwrap ` +
          "(SandboxPool spec.isolation.mode is none, so its slots would see the host instead)",
      );
    }
    const unpacked = await this.images.unpack(template.image);
    return { root: unpacked.rootfs, env: unpacked.config.env, workingDir: unpacked.config.workingDir };
  }

  async list(pool: string): Promise<SandboxInfo[]> {
    const poolDir = join(this.rootDir, encodeURIComponent(pool));
    const names = await readdir(poolDir).catch(() => [] as string[]);
    const infos: SandboxInfo[] = [];
    for (const name of names) {
      const id = sandboxId(pool, name);
      const metadata = await this.readMetadata(id).catch(() => undefined);
      if (metadata === undefined) continue;
      const exited = await this.exitReason(id);
      if (exited !== undefined) {
        infos.push({ ...toInfo(id, metadata), phase: "failed", message: `sandbox server ${exited}` });
        continue;
      }
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
    this.inFlight.set(sandbox.id, (this.inFlight.get(sandbox.id) ?? 0) + 1);
    try {
      return await this.call(sandbox, (server) => server.client.exec(request));
    } finally {
      const left = (this.inFlight.get(sandbox.id) ?? 1) - 1;
      if (left === 0) this.inFlight.delete(sandbox.id);
      else this.inFlight.set(sandbox.id, left);
    }
  }

  readFile(sandbox: SandboxRef, slot: number, path: string): Promise<Uint8Array> {
    return this.call(sandbox, (server) => server.client.readFile(slot, path));
  }

  writeFile(sandbox: SandboxRef, slot: number, path: string, data: Uint8Array | string): Promise<void> {
    return this.call(sandbox, (server) => server.client.writeFile(slot, path, data));
  }

  resetSlot(sandbox: SandboxRef, slot: number): Promise<void> {
    return this.call(sandbox, (server) => server.client.reset(slot));
  }

  async health(sandbox: SandboxRef): Promise<SandboxHealth> {
    const answer = await this.call(sandbox, (server) => server.client.health());
    return { ok: answer.status === "ok", isolation: answer.isolation, ...(answer.message ? { message: answer.message } : {}) };
  }

  async terminate(sandbox: SandboxRef): Promise<void> {
    const server = this.servers.get(sandbox.id);
    this.servers.delete(sandbox.id);
    this.lastActivity.delete(sandbox.id);
    await server?.then((process) => process.stop()).catch(() => undefined); // one that never started has nothing to stop
    try {
      // What a server that died left: its workspaces mounted, its slot cgroups.
      await unmountUnder(this.directory(sandbox.id));
      await SlotCgroups.removeLeftovers(this.directory(sandbox.id));
      await rm(this.directory(sandbox.id), { recursive: true, force: true });
    } catch (error) {
      throw classifyLocalError(error, `terminate ${sandbox.id}`, "transient");
    }
  }

  async close(): Promise<void> {
    const servers = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(servers.map((server) => server.then((process) => process.stop()).catch(() => undefined)));
    await rm(this.socketDir, { recursive: true, force: true });
  }

  /** A call to the sandbox's server; once that server has exited, the sandbox is gone. */
  private async call<T>(sandbox: SandboxRef, request: (server: SandboxServerProcess) => Promise<T>): Promise<T> {
    this.lastActivity.set(sandbox.id, this.clock.now());
    const server = await this.live(sandbox.id);
    try {
      return await request(server);
    } catch (error) {
      if (server.exitReason !== undefined)
        throw new SandboxError("gone", `sandbox ${sandbox.id}: its server ${server.exitReason}`, { cause: error });
      throw error;
    }
  }

  private async live(id: string): Promise<SandboxServerProcess> {
    const started = this.servers.get(id);
    const server =
      started !== undefined
        ? await started
        : await this.server(
            id,
            await this.readMetadata(id).catch((error: unknown) => {
              throw classifyLocalError(error, `sandbox ${id}`);
            }),
          );
    if (server.exitReason !== undefined) throw new SandboxError("gone", `sandbox ${id}: its server ${server.exitReason}`);
    return server;
  }

  /** The sandbox's server, started once (concurrent callers share the start); a start that failed is tried again. */
  private server(id: string, metadata: SandboxMetadata): Promise<SandboxServerProcess> {
    let server = this.servers.get(id);
    if (server === undefined) {
      server = SandboxServerProcess.start({
        launcher: this.launcher,
        root: this.directory(id),
        slots: metadata.slots,
        isolation: this.isolation.isolation,
        network: this.network,
        slotLimits: this.slotLimits,
        socketPath: join(this.socketDir, `${++this.socketCount}.sock`),
        ...(metadata.env === undefined ? {} : { env: metadata.env }),
        ...(metadata.rootfs === undefined ? {} : { image: { root: metadata.rootfs.root, env: metadata.rootfs.env } }),
        ...(metadata.workdir === undefined ? {} : { workdir: metadata.workdir }),
        readyTimeoutMs: this.readyTimeoutMs,
      });
      this.servers.set(id, server);
      const started = server;
      started.catch(() => {
        if (this.servers.get(id) === started) this.servers.delete(id);
      });
    }
    return server;
  }

  private async exitReason(id: string): Promise<string | undefined> {
    const server = await this.servers.get(id)?.catch(() => undefined);
    return server?.exitReason;
  }

  private expiry(id: string, metadata: SandboxMetadata): string | undefined {
    const now = this.clock.now();
    const created = Date.parse(metadata.createdAt);
    if (metadata.lifetimeSeconds > 0 && now - created > metadata.lifetimeSeconds * 1000) return "lifetime";
    const busy = (this.inFlight.get(id) ?? 0) > 0;
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
    ...(metadata.image === undefined ? {} : { image: metadata.image }),
    createdAt: new Date(metadata.createdAt),
  };
}
