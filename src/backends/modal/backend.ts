import { AlreadyExistsError, ModalClient, type App, type Sandbox } from "modal";
import { logger } from "../../base/log.ts";
import { buildSlotCommand, resolveInsideWorkspace, slotDirectory } from "../isolation.ts";
import { imageMountPoints, type ImageView } from "../image-view.ts";
import {
  SLOT_WORKSPACE,
  type ExecRequest,
  type ExecResult,
  type IsolationMode,
  type IsolationPolicy,
  type SandboxBackend,
  type SandboxHealth,
  type SandboxInfo,
  type SandboxRef,
  type SandboxTemplate,
} from "../types.ts";
import { toSandboxError } from "./errors.ts";
import { runProcess, type RunOptions } from "./exec.ts";
import {
  KILLED_EXIT_CODE,
  TAG,
  execArgv,
  infoFromTags,
  isValidSandboxName,
  DEFAULT_MAX_THROTTLE_WAIT_SECS,
  poolSelector,
  prepareArgv,
  sandboxTags,
  sdkLogger,
  wholeSecondsMs,
} from "./plan.ts";
import { Semaphore } from "./semaphore.ts";
import { SandboxError } from "../../base/errors.ts";

const log = logger("modal-backend");

export interface ModalBackendOptions {
  /** The Modal app every pool's sandboxes live in (created if missing). */
  appName: string;
  /** Control-plane URL for this backend's client alone; MODAL_SERVER_URL (or the SDK's default) when unset. */
  serverUrl?: string;
  environment?: string;
  /** Sandbox working directory; slots and cache live under it. */
  sandboxRoot?: string;
  /** Concurrent `sandboxes.create` calls (Modal rate-limits creates; users leak sandboxes past the limit). */
  maxConcurrentCreates?: number;
  /** Regions Modal may place sandboxes in; any when unset. */
  regions?: readonly string[];
  /** Bound on server-directed throttling waits per call, so no call blocks forever; the CLI passes MODAL_MAX_THROTTLE_WAIT. */
  maxThrottleWaitSecs?: number;
  /** The pool's setting; under bwrap a sandbox where bwrap cannot run fails (never runs slots unconfined). */
  isolation?: IsolationPolicy;
  /** Credentials; the SDK falls back to MODAL_TOKEN_ID/SECRET and ~/.modal.toml. */
  tokenId?: string;
  tokenSecret?: string;
}

/** What we learned about a sandbox from inside it, once. */
interface SandboxState {
  /** The sandbox root as processes in it see it (`pwd -P` of the workdir). */
  root: string;
  isolation: IsolationMode;
  isolationMessage?: string;
  /** Under bwrap with a slot workdir (SandboxTemplate.workdir): slots see the container's root, which is the image. */
  image?: ImageView;
  workdir?: string;
}

/**
 * The SDK takes its control-plane URL only from MODAL_SERVER_URL, read when a client is built: set it for that
 * moment alone, so one pool's URL never reaches another pool's client (which would send it that pool's token).
 */
function withServerUrl<T>(serverUrl: string | undefined, build: () => T): T {
  if (serverUrl === undefined) return build();
  const previous = process.env.MODAL_SERVER_URL;
  process.env.MODAL_SERVER_URL = serverUrl;
  try {
    return build();
  } finally {
    if (previous === undefined) delete process.env.MODAL_SERVER_URL;
    else process.env.MODAL_SERVER_URL = previous;
  }
}

const DEFAULT_SANDBOX_ROOT = "/hermes";
const PREPARE_TIMEOUT_MS = 60_000;
const UTILITY_TIMEOUT_MS = 30_000;

export class ModalBackend implements SandboxBackend {
  readonly kind = "modal" as const;
  readonly client: ModalClient;
  private readonly options: Required<Pick<ModalBackendOptions, "appName" | "sandboxRoot" | "isolation">> & ModalBackendOptions;
  private readonly createLimit: Semaphore;
  private app: Promise<App> | undefined;
  private readonly states = new Map<string, Promise<SandboxState>>();
  private readonly handles = new Map<string, Promise<Sandbox>>();

  constructor(options: ModalBackendOptions) {
    this.options = { sandboxRoot: DEFAULT_SANDBOX_ROOT, isolation: { mode: "bwrap", network: "none" }, ...options };
    this.createLimit = new Semaphore(options.maxConcurrentCreates ?? 4);
    this.client = withServerUrl(
      options.serverUrl,
      () =>
        new ModalClient({
          logger: sdkLogger(logger("modal-sdk")),
          maxThrottleWaitSecs: options.maxThrottleWaitSecs ?? DEFAULT_MAX_THROTTLE_WAIT_SECS,
          ...(options.environment !== undefined ? { environment: options.environment } : {}),
          ...(options.tokenId !== undefined ? { tokenId: options.tokenId } : {}),
          ...(options.tokenSecret !== undefined ? { tokenSecret: options.tokenSecret } : {}),
        }),
    );
  }

  private appHandle(): Promise<App> {
    this.app ??= this.client.apps.fromName(this.options.appName, { createIfMissing: true }).catch((error: unknown) => {
      this.app = undefined;
      throw toSandboxError(error, "app lookup");
    });
    return this.app;
  }

  /** One SDK handle per sandbox: each handle dials its own command router connection. */
  private handle(sandbox: SandboxRef): Promise<Sandbox> {
    let handle = this.handles.get(sandbox.id);
    if (handle === undefined) {
      handle = this.client.sandboxes.fromId(sandbox.id);
      this.handles.set(sandbox.id, handle);
      handle.catch(() => this.handles.delete(sandbox.id));
    }
    return handle;
  }

  private forget(sandboxId: string): void {
    this.states.delete(sandboxId);
    void this.handles
      .get(sandboxId)
      ?.then((handle) => handle.detach())
      .catch(() => undefined);
    this.handles.delete(sandboxId);
  }

  async create(name: string, template: SandboxTemplate): Promise<SandboxInfo> {
    if (!isValidSandboxName(name)) throw new SandboxError("configuration", `invalid Modal sandbox name ${JSON.stringify(name)}`);
    return this.createLimit.run(async () => {
      const app = await this.appHandle();
      const createdAt = new Date();
      let sandbox: Sandbox;
      try {
        sandbox = await this.client.sandboxes.create(app, this.client.images.fromRegistry(template.image), {
          name,
          tags: sandboxTags(name, template, createdAt),
          timeoutMs: wholeSecondsMs(template.lifetimeSeconds * 1000),
          ...(template.idleTimeoutSeconds > 0 ? { idleTimeoutMs: wholeSecondsMs(template.idleTimeoutSeconds * 1000) } : {}),
          cpu: template.cpu,
          memoryMiB: template.memoryMiB,
          workdir: this.options.sandboxRoot,
          ...(this.options.regions?.length ? { regions: [...this.options.regions] } : {}),
          ...(template.env !== undefined ? { env: template.env } : {}),
        });
      } catch (error) {
        if (!(error instanceof AlreadyExistsError)) throw toSandboxError(error, `create ${name}`);
        // Idempotent create: the running sandbox of that name is ours (another replica or an earlier attempt).
        sandbox = await this.client.sandboxes.fromName(this.options.appName, name).catch((lookup: unknown) => {
          throw toSandboxError(lookup, `create ${name} (lookup of the existing sandbox)`);
        });
        const existing = infoFromTags(
          sandbox.sandboxId,
          await sandbox.getTags().catch((tags: unknown) => {
            throw toSandboxError(tags, "getTags");
          }),
        );
        if (existing === undefined) {
          throw new SandboxError(
            "configuration",
            `a running Modal sandbox named ${name} exists in app ${this.options.appName} but is not managed by hermes-rollouts`,
          );
        }
        await this.stateOf({ id: existing.id, name });
        return existing;
      }
      const ref = { id: sandbox.sandboxId, name };
      await this.stateOf(ref, { slots: template.slots, workdir: template.workdir });
      log.info({ sandbox: ref.id, name, pool: template.pool }, "modal sandbox ready");
      return {
        ...ref,
        pool: template.pool,
        phase: "ready",
        slots: template.slots,
        templateHash: template.templateHash,
        image: template.image,
        createdAt,
      };
    });
  }

  /** Slot dirs, root discovery and the isolation probe: once per sandbox (again after a restart, on first use). */
  private stateOf(ref: SandboxRef, created?: { slots: number; workdir: string | undefined }): Promise<SandboxState> {
    let state = this.states.get(ref.id);
    if (state === undefined) {
      state = this.discover(ref, created);
      this.states.set(ref.id, state);
      state.catch(() => this.states.delete(ref.id));
    }
    return state;
  }

  private async discover(ref: SandboxRef, created: { slots: number; workdir: string | undefined } | undefined): Promise<SandboxState> {
    const sandbox = await this.handle(ref);
    const tags =
      created === undefined
        ? await sandbox.getTags().catch((error: unknown) => {
            throw toSandboxError(error, "getTags");
          })
        : {};
    const slotCount = created?.slots ?? Number(tags[TAG.slots] ?? 1);
    const workdir = created === undefined ? tags[TAG.workdir] : created.workdir;
    const { mode, network } = this.options.isolation;
    // The container is the image: with a slot workdir, slots see its root and have their workspace there.
    const inImage = mode === "bwrap" && workdir !== undefined ? { image: { root: "/", env: {} }, workdir } : undefined;
    const mountPoints = inImage === undefined ? [] : imageMountPoints(inImage.image, inImage.workdir);
    const prepared = await this.run(sandbox, prepareArgv(slotCount, mountPoints), PREPARE_TIMEOUT_MS);
    if (prepared.exitCode !== 0) throw new SandboxError("configuration", `preparing slots in ${ref.id} failed: ${prepared.stderr.trim()}`);
    const root = prepared.stdout.trim();
    if (mode === "none") return { root, isolation: "none", isolationMessage: "slot isolation disabled by configuration" };
    const probe = buildSlotCommand({ sandboxRoot: root, slot: 0, command: ["true"], isolation: "bwrap", network });
    const probed = await this.run(sandbox, [probe.file, ...probe.args], UTILITY_TIMEOUT_MS, { workdir: probe.cwd, env: probe.env });
    if (probed.exitCode === 0) return { root, isolation: "bwrap", ...inImage };
    throw new SandboxError(
      "configuration",
      `bubblewrap unavailable in Modal sandbox ${ref.id}, slots cannot be isolated: ${probed.stderr.trim()}`,
    );
  }

  async list(pool: string): Promise<SandboxInfo[]> {
    try {
      const app = await this.appHandle();
      const found: SandboxInfo[] = [];
      for await (const sandbox of this.client.sandboxes.list({ appId: app.appId, tags: poolSelector(pool) })) {
        const info = infoFromTags(sandbox.sandboxId, await sandbox.getTags());
        if (info !== undefined) found.push(info);
      }
      return found;
    } catch (error) {
      throw toSandboxError(error, `list ${pool}`);
    }
  }

  /** The exact `sb.exec` argv, workdir and env a slot command runs as (bench/slots compares it with a raw exec). */
  async planExec(ref: SandboxRef, request: ExecRequest): Promise<{ argv: string[]; workdir: string; env: Record<string, string> }> {
    const state = await this.stateOf(ref);
    const plan = buildSlotCommand({
      sandboxRoot: state.root,
      slot: request.slot,
      command: request.command,
      ...(request.cwd !== undefined ? { cwd: request.cwd } : {}),
      ...(request.env !== undefined ? { env: request.env } : {}),
      isolation: state.isolation,
      trusted: request.trusted,
      network: this.options.isolation.network,
      image: state.image,
      workdir: state.workdir,
    });
    return { argv: execArgv(plan, request.timeoutMs), workdir: plan.cwd, env: plan.env };
  }

  async exec(ref: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    const planned = await this.planExec(ref, request);
    const sandbox = await this.handle(ref);
    const result = await this.run(sandbox, planned.argv, request.timeoutMs, {
      workdir: planned.workdir,
      env: planned.env,
      ...(request.stdin !== undefined ? { stdin: request.stdin } : {}),
      ...(request.maxOutputBytes !== undefined ? { maxOutputBytes: request.maxOutputBytes } : {}),
    });
    // A killed exec (137) may mean the sandbox itself died under it: then the slot's sandbox is gone.
    if (result.exitCode === KILLED_EXIT_CODE && !result.timedOut) await this.assertRunning(sandbox, ref);
    return result;
  }

  private run(sandbox: Sandbox, argv: string[], timeoutMs: number, options: RunOptions = {}): Promise<ExecResult> {
    return runProcess(sandbox, argv, timeoutMs, () => this.assertRunning(sandbox, { id: sandbox.sandboxId, name: "" }), options);
  }

  /** Throws SandboxError "gone" when the sandbox has finished (poll answers with its exit code). */
  private async assertRunning(sandbox: Sandbox, ref: SandboxRef): Promise<void> {
    let exit: number | null;
    try {
      exit = await sandbox.poll();
    } catch (error) {
      throw toSandboxError(error, `poll ${ref.id}`);
    }
    if (exit !== null) {
      this.forget(sandbox.sandboxId);
      throw new SandboxError("gone", `modal sandbox ${sandbox.sandboxId} finished with exit code ${exit}`);
    }
  }

  private async workspaceTarget(ref: SandboxRef, slot: number, path: string): Promise<{ state: SandboxState; target: string }> {
    const state = await this.stateOf(ref);
    const workspace = state.isolation === "bwrap" ? (state.workdir ?? SLOT_WORKSPACE) : slotDirectory(state.root, slot);
    return { state, target: resolveInsideWorkspace(workspace, path) };
  }

  async readFile(ref: SandboxRef, slot: number, path: string): Promise<Uint8Array> {
    const { target } = await this.workspaceTarget(ref, slot, path);
    const result = await this.exec(ref, {
      slot,
      command: ["base64", "-w0", "--", target],
      timeoutMs: UTILITY_TIMEOUT_MS,
      maxOutputBytes: Number.MAX_SAFE_INTEGER,
    });
    if (result.exitCode !== 0) throw new Error(`readFile ${path} in ${ref.id} slot ${slot}: ${result.stderr.trim()}`);
    return Buffer.from(result.stdout, "base64");
  }

  async writeFile(ref: SandboxRef, slot: number, path: string, data: Uint8Array | string): Promise<void> {
    const { target } = await this.workspaceTarget(ref, slot, path);
    const encoded = Buffer.from(typeof data === "string" ? Buffer.from(data) : data).toString("base64");
    const script = 'mkdir -p -- "$(dirname -- "$1")" && base64 -d > "$1"';
    const result = await this.exec(ref, {
      slot,
      command: ["bash", "-c", script, "write", target],
      stdin: encoded,
      timeoutMs: UTILITY_TIMEOUT_MS,
    });
    if (result.exitCode !== 0) throw new Error(`writeFile ${path} in ${ref.id} slot ${slot}: ${result.stderr.trim()}`);
  }

  async resetSlot(ref: SandboxRef, slot: number): Promise<void> {
    const state = await this.stateOf(ref);
    const sandbox = await this.handle(ref);
    // Slot commands die with their exec (bwrap pid namespace, process group), so wiping the directory is enough.
    const result = await this.run(
      sandbox,
      ["bash", "-c", 'mkdir -p -- "$1" && find "$1" -mindepth 1 -delete', "reset", slotDirectory(state.root, slot)],
      UTILITY_TIMEOUT_MS,
    );
    if (result.exitCode !== 0) {
      await this.assertRunning(sandbox, ref);
      throw new SandboxError("transient", `reset of slot ${slot} in ${ref.id} failed: ${result.stderr.trim()}`);
    }
  }

  async health(ref: SandboxRef): Promise<SandboxHealth> {
    try {
      const sandbox = await this.handle(ref);
      await this.assertRunning(sandbox, ref);
      const state = await this.stateOf(ref);
      const result = await this.run(sandbox, ["test", "-d", `${state.root}/slots`], UTILITY_TIMEOUT_MS);
      if (result.exitCode !== 0) return { ok: false, isolation: state.isolation, message: `slot directories missing in ${ref.id}` };
      return { ok: true, isolation: state.isolation, ...(state.isolationMessage !== undefined ? { message: state.isolationMessage } : {}) };
    } catch (error) {
      return { ok: false, isolation: "none", message: toSandboxError(error, `health ${ref.id}`).message };
    }
  }

  async terminate(ref: SandboxRef): Promise<void> {
    try {
      await (await this.handle(ref)).terminate();
    } catch (error) {
      const classified = toSandboxError(error, `terminate ${ref.id}`);
      if (classified.kind !== "gone") throw classified;
    }
    this.forget(ref.id);
  }

  async close(): Promise<void> {
    for (const id of [...this.handles.keys()]) this.forget(id);
    this.client.close();
  }
}
