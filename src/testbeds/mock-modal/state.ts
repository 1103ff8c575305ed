import { ServerError, Status } from "nice-grpc";
import { MockFaults } from "./faults.ts";
import type { MockImage, MockImages } from "./images.ts";
import { MockSandbox, mintId } from "./sandboxes.ts";

/** Everything the mock control plane and router share: objects by id, router tokens, where to reach the router. */
export class MockModalState {
  readonly faults = new MockFaults();
  readonly environments = new Map<string, string>(); // name → id
  readonly apps = new Map<string, { appId: string; name: string; environment: string }>(); // `env/name` → app
  /** Built images by id, and where `FROM <tag>` builds find theirs. */
  readonly images = new Map<string, MockImage>();
  readonly imageSource: MockImages;
  readonly secrets = new Map<string, { secretId: string; env: Record<string, string> }>(); // `env/name` → secret
  readonly secretsById = new Map<string, Record<string, string>>();
  readonly sandboxes = new Map<string, MockSandbox>();
  private readonly routerTokens = new Set<string>();
  readonly dataDir: string;
  /** Plaintext router URL for loopback clients, TLS router URL for the rest (undefined without a TLS port). */
  routerUrls: { loopback: string; tls?: string } = { loopback: "" };

  constructor(dataDir: string, imageSource: MockImages) {
    this.dataDir = dataDir;
    this.imageSource = imageSource;
  }

  environmentId(name: string): string {
    const key = name || "main";
    let id = this.environments.get(key);
    if (id === undefined) {
      id = mintId("en");
      this.environments.set(key, id);
    }
    return id;
  }

  sandbox(sandboxId: string): MockSandbox {
    const sandbox = this.sandboxes.get(sandboxId);
    if (sandbox === undefined) throw new ServerError(Status.NOT_FOUND, `sandbox ${sandboxId} not found`);
    return sandbox;
  }

  sandboxByTask(taskId: string): MockSandbox {
    for (const sandbox of this.sandboxes.values()) if (sandbox.taskId === taskId) return sandbox;
    throw new ServerError(Status.NOT_FOUND, `task ${taskId} not found`);
  }

  runningSandboxNamed(appId: string, name: string): MockSandbox | undefined {
    for (const sandbox of this.sandboxes.values()) {
      if (sandbox.running && sandbox.spec.appId === appId && sandbox.spec.name === name) return sandbox;
    }
    return undefined;
  }

  appByName(environment: string, name: string): { appId: string } | undefined {
    return this.apps.get(`${environment || "main"}/${name}`);
  }

  mintRouterToken(): string {
    const token = fakeJwt(3600);
    this.routerTokens.add(token);
    return token;
  }

  isRouterToken(token: string): boolean {
    return this.routerTokens.has(token);
  }

  routerUrlFor(peer: string): string {
    const tls = this.routerUrls.tls;
    return tls !== undefined && !isLoopbackPeer(peer) ? tls : this.routerUrls.loopback;
  }

  close(): void {
    for (const sandbox of this.sandboxes.values()) {
      sandbox.terminate();
      sandbox.removeFiles();
    }
  }
}

/** An unsigned JWT-shaped token: the SDK only reads `exp` to schedule refreshes. */
export function fakeJwt(lifetimeSecs: number): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ exp: Math.floor(Date.now() / 1000) + lifetimeSecs, jti: mintId("jw") })}.mock`;
}

/** grpc-js peers look like `ipv4:127.0.0.1:5555`, `ipv6:[::1]:5555` or `127.0.0.1:5555`. */
export function isLoopbackPeer(peer: string): boolean {
  const address = peer
    .replace(/^ipv[46]:/, "")
    .replace(/:\d+$/, "")
    .replace(/^\[|\]$/g, "")
    .replace(/^::ffff:/, "");
  return address === "::1" || address === "localhost" || address.startsWith("127.");
}
