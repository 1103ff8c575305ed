import { ServerCredentials } from "@grpc/grpc-js";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, ServerError, Status, type Server } from "nice-grpc";
import { ModalClientDefinition, TaskCommandRouterDefinition, type ServiceDefinitionLike } from "./generated/modal-internals.js";
import { logger } from "../../base/log.ts";
import { controlPlaneHandlers } from "./control-plane.ts";
import { MockImages } from "./images.ts";
import { parseFaultSpec, type MockFaults } from "./faults.ts";
import { routerHandlers } from "./router.ts";
import { MockModalState } from "./state.ts";
import { generateTlsMaterial, type MockCaFiles } from "./tls.ts";

const log = logger("mock-modal");

export interface MockModalOptions {
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** When both are unset any token is accepted. */
  tokenId?: string;
  tokenSecret?: string;
  /** Where sandbox roots live; a temp dir (removed on close) by default. */
  dataDir?: string;
  /** Serve the router (and the control plane) over TLS on this port too, for non-loopback clients; 0 picks one. */
  tlsPort?: number;
  /** The host name/IP non-loopback clients reach us at (goes into the router URL and the certificate). */
  advertiseHost?: string;
  /** Sign the TLS certificate with this CA instead of a throwaway one (clients then trust a CA known in advance). */
  tlsCa?: MockCaFiles;
  /** Images served by tag (see images.ts); without it every image is the host. */
  imagesDir?: string;
  /** Fault spec, see faults.ts (the CLI's --faults, or MOCK_MODAL_FAULTS). */
  faults?: string;
}

export interface MockModal {
  /** `http://host:port`, what MODAL_SERVER_URL must be set to. */
  url: string;
  port: number;
  tlsPort?: number;
  /** Set GRPC_DEFAULT_SSL_ROOTS_FILE_PATH to this in non-loopback clients. */
  caFile?: string;
  dataDir: string;
  state: MockModalState;
  faults: MockFaults;
  close(): Promise<void>;
}

type AnyHandler = (...args: never[]) => unknown;

/** Binds every method of `definition`: ours where implemented, UNIMPLEMENTED (of the right call shape) otherwise. */
function implementation(definition: ServiceDefinitionLike, handlers: Record<string, AnyHandler>): Record<string, AnyHandler> {
  const result: Record<string, AnyHandler> = {};
  for (const [key, method] of Object.entries(definition.methods)) {
    const handler = handlers[key];
    if (handler !== undefined) result[key] = handler;
    else if (method.responseStream) {
      result[key] = async function* () {
        throw new ServerError(Status.UNIMPLEMENTED, `mock-modal does not implement ${method.name}`);
      };
    } else {
      result[key] = () => {
        throw new ServerError(Status.UNIMPLEMENTED, `mock-modal does not implement ${method.name}`);
      };
    }
  }
  return result;
}

function buildServer(state: MockModalState, options: MockModalOptions): Server {
  const auth = {
    ...(options.tokenId !== undefined ? { tokenId: options.tokenId } : {}),
    ...(options.tokenSecret !== undefined ? { tokenSecret: options.tokenSecret } : {}),
    isRouterToken: (token: string) => state.isRouterToken(token),
  };
  const server = createServer({
    "grpc.max_receive_message_length": 100 * 1024 * 1024,
    "grpc.max_send_message_length": 100 * 1024 * 1024,
  }).use(state.faults.middleware(auth));
  // The generated definitions are typed loosely on purpose (see scripts/extract-modal-definitions.ts).
  const add = server.add.bind(server) as (definition: unknown, implementation: unknown) => void;
  add(ModalClientDefinition, implementation(ModalClientDefinition, controlPlaneHandlers(state)));
  add(TaskCommandRouterDefinition, implementation(TaskCommandRouterDefinition, routerHandlers(state)));
  return server;
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Starts the mock control plane (plaintext) and, with `tlsPort`, a TLS listener for non-loopback clients. */
export async function startMockModal(options: MockModalOptions = {}): Promise<MockModal> {
  const host = options.host ?? "127.0.0.1";
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "mock-modal-")));
  await mkdir(dataDir, { recursive: true });
  const images = new MockImages({ imagesDir: options.imagesDir, cacheDir: join(dataDir, "images"), rootless: process.getuid?.() !== 0 });
  const state = new MockModalState(join(dataDir, "sandboxes"), images);
  await mkdir(state.dataDir, { recursive: true });
  if (options.faults) state.faults.arm(parseFaultSpec(options.faults));

  const plain = buildServer(state, options);
  const port = await plain.listen(hostPort(host, options.port ?? 0));
  const loopbackHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  state.routerUrls = { loopback: `https://${hostPort(loopbackHost, port)}` };

  let tls: Server | undefined;
  let tlsPort: number | undefined;
  let caFile: string | undefined;
  if (options.tlsPort !== undefined) {
    const advertiseHost = options.advertiseHost ?? loopbackHost;
    const material = await generateTlsMaterial(dataDir, advertiseHost, options.tlsCa);
    tls = buildServer(state, options);
    tlsPort = await tls.listen(
      hostPort(host, options.tlsPort),
      ServerCredentials.createSsl(null, [{ cert_chain: material.cert, private_key: material.key }]),
    );
    caFile = material.caFile;
    state.routerUrls.tls = `https://${hostPort(advertiseHost, tlsPort)}`;
  }
  const url = `http://${hostPort(loopbackHost, port)}`;
  log.info({ url, tlsPort, caFile, dataDir, auth: options.tokenId !== undefined ? "token" : "any" }, "mock Modal serving");

  return {
    url,
    port,
    ...(tlsPort !== undefined ? { tlsPort } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    dataDir,
    state,
    faults: state.faults,
    async close() {
      state.close();
      plain.forceShutdown();
      tls?.forceShutdown();
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
