import { ServerError, Status, type CallContext } from "nice-grpc";
import { fromTag, type MockImage } from "./images.ts";
import { GENERIC_STATUS, MockSandbox, mintId, prepareSandboxRoot } from "./sandboxes.ts";
import { fakeJwt, type MockModalState } from "./state.ts";

/**
 * Handlers of `modal.client.ModalClient` for the sandbox work the SDK does (V2 and V1 paths, see modal-sdk.md
 * section 4.2). Requests are decoded by the SDK's own codecs; handlers return plain objects that `fromPartial`
 * completes. Every other method is answered UNIMPLEMENTED by the server wiring.
 */
type Handler = (request: never, context: CallContext) => unknown;

interface Tag {
  tagName: string;
  tagValue: string;
}
interface SecretSource {
  secretId?: string;
  env?: { contents: Record<string, string> };
}
interface SandboxDefinition {
  imageId: string;
  entrypointArgs: string[];
  timeoutSecs: number;
  idleTimeoutSecs?: number;
  workdir?: string;
  name?: string;
  secretIds: string[];
  schedulerPlacement?: { regions: string[] };
}
interface CreateRequest {
  appId: string;
  definition?: SandboxDefinition;
  tags: Tag[];
  secretSources?: SecretSource[];
}
interface ImageRequest {
  image?: { dockerfileCommands: string[]; baseImages: Array<{ imageId: string }> };
}
interface ListRequest {
  appId: string;
  beforeTimestamp: number;
  environmentName: string;
  includeFinished: boolean;
  tags: Tag[];
}

/** Default sandbox lifetime when the request says 0 (the SDK itself always sends 300 unless told otherwise). */
const DEFAULT_TIMEOUT_SECS = 300;
const LIST_PAGE_SIZE = 100;
const SANDBOX_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function controlPlaneHandlers(state: MockModalState): Record<string, Handler> {
  const resultOf = (sandbox: MockSandbox) => sandbox.result && { ...sandbox.result };

  const envOf = (sources: readonly SecretSource[] = [], secretIds: readonly string[] = []): Record<string, string> => {
    const env: Record<string, string> = {};
    for (const id of secretIds) Object.assign(env, state.secretsById.get(id));
    for (const source of sources) {
      if (source.secretId) Object.assign(env, state.secretsById.get(source.secretId));
      if (source.env) Object.assign(env, source.env.contents);
    }
    return env;
  };

  const createSandbox = async (request: CreateRequest, v1: boolean): Promise<MockSandbox> => {
    const definition = request.definition;
    if (definition === undefined) throw new ServerError(Status.INVALID_ARGUMENT, "sandbox definition missing");
    const image = state.images.get(definition.imageId);
    if (image === undefined) throw new ServerError(Status.NOT_FOUND, `image ${definition.imageId} not found`);
    const workdir = definition.workdir ?? "";
    // The root is made first (copying an image takes a while), then checked against the sandboxes of that moment.
    const root = await prepareSandboxRoot(state.dataDir, v1, image, workdir);
    try {
      if (![...state.apps.values()].some((app) => app.appId === request.appId)) {
        throw new ServerError(Status.NOT_FOUND, `app ${request.appId} not found`);
      }
      const name = definition.name ?? "";
      if (name !== "") {
        if (!SANDBOX_NAME.test(name)) throw new ServerError(Status.INVALID_ARGUMENT, `invalid sandbox name ${name}`);
        if (state.runningSandboxNamed(request.appId, name)) {
          throw new ServerError(Status.ALREADY_EXISTS, `a running sandbox named ${name} already exists in this app`);
        }
      }
      const sandbox = new MockSandbox(
        {
          appId: request.appId,
          name,
          tags: new Map(request.tags.map((tag) => [tag.tagName, tag.tagValue])),
          timeoutSecs: definition.timeoutSecs || DEFAULT_TIMEOUT_SECS,
          idleTimeoutSecs: definition.idleTimeoutSecs ?? 0,
          workdir,
          env: envOf(request.secretSources, definition.secretIds),
          entrypointArgs: definition.entrypointArgs,
          regions: definition.schedulerPlacement?.regions ?? [],
          v1,
        },
        root,
      );
      state.sandboxes.set(sandbox.id, sandbox);
      return sandbox;
    } catch (error) {
      root.remove();
      throw error;
    }
  };

  /** A `FROM <tag>` build resolves the tag (images.ts); `FROM base` layers are their base image. */
  const buildImage = async (request: ImageRequest): Promise<MockImage | { failure: string }> => {
    const commands = request.image?.dockerfileCommands ?? [];
    const tag = fromTag(commands);
    if (tag !== undefined) return state.imageSource.resolve(tag);
    const base = state.images.get(request.image?.baseImages[0]?.imageId ?? "");
    return base ?? { failure: `base image of ${JSON.stringify(commands[0] ?? "")} not found` };
  };

  const taskIdResponse = (request: { sandboxId: string }) => {
    const sandbox = state.sandbox(request.sandboxId);
    return sandbox.running ? { taskId: sandbox.taskId } : { taskResult: resultOf(sandbox) };
  };

  const wait = async (request: { sandboxId: string; timeout: number }) => {
    const sandbox = state.sandbox(request.sandboxId);
    await sandbox.waitFinished(request.timeout * 1000);
    return { result: resultOf(sandbox), metadata: { appId: sandbox.spec.appId } };
  };

  const terminate = (request: { sandboxId: string }) => {
    const sandbox = state.sandbox(request.sandboxId);
    const existingResult = resultOf(sandbox);
    sandbox.terminate();
    return { existingResult };
  };

  /** Running sandboxes (unless asked otherwise) with all the requested tags, newest first, paged by creation time. */
  const list = (request: ListRequest) => {
    const matching = [...state.sandboxes.values()]
      .filter((sandbox) => request.includeFinished || sandbox.running)
      .filter((sandbox) => request.appId === "" || sandbox.spec.appId === request.appId)
      .filter((sandbox) => request.tags.every((tag) => sandbox.tags.get(tag.tagName) === tag.tagValue))
      .filter((sandbox) => !request.beforeTimestamp || sandbox.createdAt < request.beforeTimestamp)
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, LIST_PAGE_SIZE);
    return {
      sandboxes: matching.map((sandbox) => ({
        id: sandbox.id,
        createdAt: sandbox.createdAt,
        appId: sandbox.spec.appId,
        name: sandbox.spec.name,
        tags: [...sandbox.tags].map(([tagName, tagValue]) => ({ tagName, tagValue })),
        timeoutSecs: sandbox.spec.timeoutSecs,
        taskInfo: { id: sandbox.taskId, result: resultOf(sandbox) },
      })),
    };
  };

  const fromName = (request: { appName: string; sandboxName: string; environmentName: string }) => {
    const app = state.appByName(request.environmentName, request.appName);
    const sandbox = app && state.runningSandboxNamed(app.appId, request.sandboxName);
    if (sandbox === undefined) throw new ServerError(Status.NOT_FOUND, `no running sandbox named ${request.sandboxName}`);
    return { sandboxId: sandbox.id };
  };

  const tagsSet = (request: { sandboxId: string; tags: Tag[] }) => {
    state.sandbox(request.sandboxId).tags = new Map(request.tags.map((tag) => [tag.tagName, tag.tagValue]));
    return {};
  };

  const tagsGet = (request: { sandboxId: string }) => ({
    tags: [...state.sandbox(request.sandboxId).tags].map(([tagName, tagValue]) => ({ tagName, tagValue })),
  });

  const routerAccess = (sandbox: MockSandbox, context: CallContext) => {
    if (!sandbox.running) throw new ServerError(Status.FAILED_PRECONDITION, `sandbox ${sandbox.id} has finished`);
    return { url: state.routerUrlFor(context.peer), jwt: state.mintRouterToken() };
  };

  const handlers = {
    authTokenGet: () => ({ token: fakeJwt(3600) }),
    environmentGetOrCreate: (request: { deploymentName: string }) => ({
      environmentId: state.environmentId(request.deploymentName),
      metadata: { name: request.deploymentName || "main", settings: { imageBuilderVersion: "2024.10" } },
    }),
    appGetOrCreate: (request: { appName: string; environmentName: string; objectCreationType: number }) => {
      const key = `${request.environmentName || "main"}/${request.appName}`;
      let app = state.apps.get(key);
      if (app === undefined) {
        // 0 = OBJECT_CREATION_TYPE_UNSPECIFIED: a plain lookup.
        if (request.objectCreationType === 0) throw new ServerError(Status.NOT_FOUND, `app ${request.appName} not found`);
        app = { appId: mintId("ap"), name: request.appName, environment: request.environmentName || "main" };
        state.apps.set(key, app);
      }
      return { appId: app.appId };
    },
    /** Images come from the images directory or are the host (images.ts); the build result is known at once. */
    imageGetOrCreate: async (request: ImageRequest) => {
      const imageId = mintId("im");
      const built = await buildImage(request);
      if ("failure" in built) return { imageId, result: { status: GENERIC_STATUS.failure, exception: built.failure } };
      state.images.set(imageId, built);
      return { imageId, result: { status: GENERIC_STATUS.success }, metadata: {} };
    },
    imageJoinStreaming: async function* () {
      yield { result: { status: GENERIC_STATUS.success }, eof: true };
    },
    imageFromId: (request: { imageId: string }) => {
      if (!state.images.has(request.imageId)) throw new ServerError(Status.NOT_FOUND, `image ${request.imageId} not found`);
      return { imageId: request.imageId, metadata: {} };
    },
    secretGetOrCreate: (request: {
      deploymentName: string;
      environmentName: string;
      envDict: Record<string, string>;
      objectCreationType: number;
    }) => {
      const key = `${request.environmentName || "main"}/${request.deploymentName}`;
      let secret = request.deploymentName === "" ? undefined : state.secrets.get(key);
      if (secret === undefined) {
        if (request.objectCreationType === 0) throw new ServerError(Status.NOT_FOUND, `secret ${request.deploymentName} not found`);
        secret = { secretId: mintId("st"), env: { ...request.envDict } };
        if (request.deploymentName !== "") state.secrets.set(key, secret);
        state.secretsById.set(secret.secretId, secret.env);
      }
      return { secretId: secret.secretId };
    },
    sandboxCreateV2: async (request: CreateRequest, context: CallContext) => {
      const sandbox = await createSandbox(request, false);
      return { sandboxId: sandbox.id, taskId: sandbox.taskId, commandRouterAccess: routerAccess(sandbox, context), tunnels: [] };
    },
    sandboxCreate: async (request: CreateRequest) => ({ sandboxId: (await createSandbox(request, true)).id }),
    sandboxGetTaskIdV2: taskIdResponse,
    sandboxGetTaskId: taskIdResponse,
    sandboxGetCommandRouterAccess: (request: { sandboxId?: string; taskId?: string }, context: CallContext) =>
      routerAccess(request.sandboxId ? state.sandbox(request.sandboxId) : state.sandboxByTask(request.taskId ?? ""), context),
    taskGetCommandRouterAccess: (request: { taskId: string }, context: CallContext) =>
      routerAccess(state.sandboxByTask(request.taskId), context),
    sandboxWaitV2: wait,
    sandboxWait: wait,
    sandboxTerminateV2: terminate,
    sandboxTerminate: terminate,
    sandboxListV2: list,
    sandboxList: list,
    sandboxGetFromNameV2: fromName,
    sandboxGetFromName: fromName,
    sandboxTagsSetV2: tagsSet,
    sandboxTagsSet: tagsSet,
    sandboxTagsGetV2: tagsGet,
    sandboxTagsGet: tagsGet,
    sandboxGetTunnelsV2: (request: { sandboxId: string }) => (state.sandbox(request.sandboxId), { tunnels: [] }),
    sandboxGetTunnels: (request: { sandboxId: string }) => (state.sandbox(request.sandboxId), { tunnels: [] }),
    /** V1 entrypoint output: one batch per chunk; `entryId` is the byte offset to resume from (the SDK starts at "0-0"). */
    sandboxGetLogs: async function* (request: { sandboxId: string; fileDescriptor: number; lastEntryId: string }, context: CallContext) {
      const sandbox = state.sandbox(request.sandboxId);
      const log = request.fileDescriptor === 2 ? sandbox.entrypoint?.stderr : sandbox.entrypoint?.stdout;
      if (log !== undefined) {
        for await (const chunk of log.read(Number.parseInt(request.lastEntryId, 10) || 0, context.signal)) {
          const entryId = String(chunk.offset + chunk.data.length);
          yield { taskId: sandbox.taskId, entryId, items: [{ data: chunk.data.toString("utf8"), fileDescriptor: request.fileDescriptor }] };
        }
      }
      yield { taskId: sandbox.taskId, eof: true };
    },
    sandboxStdinWrite: (request: { sandboxId: string; input: Uint8Array; index: number; eof: boolean }) => {
      // V1 stdin is indexed by write, not by byte: a retried write (an index already seen) is ignored.
      const sandbox = state.sandbox(request.sandboxId);
      if (request.index <= sandbox.lastV1StdinIndex) return {};
      sandbox.lastV1StdinIndex = request.index;
      sandbox.entrypoint?.writeStdin(sandbox.entrypoint.stdinStatus.numBytesWritten, request.input, request.eof);
      return {};
    },
  };
  return handlers as unknown as Record<string, Handler>;
}
