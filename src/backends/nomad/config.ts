import { readFileSync } from "node:fs";
import { SandboxError } from "../../base/errors.ts";

/**
 * Connection settings of the Nomad client. Explicit options win over the NOMAD_* variables the caller passes (the
 * CLI reads them), which follow the `nomad` CLI's contract (NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION,
 * NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY, NOMAD_TLS_SERVER_NAME).
 */
export interface NomadConnectionOptions {
  address?: string;
  token?: string;
  namespace?: string;
  region?: string;
  /** PEM text or a path (a value without "-----BEGIN" is read as a file). */
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  skipVerify?: boolean;
  tlsServerName?: string;
}

export interface NomadTls {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  servername?: string;
}

export interface NomadConnection {
  /** Without a trailing slash, e.g. `http://127.0.0.1:4646`. */
  address: string;
  token?: string;
  namespace: string;
  region?: string;
  tls?: NomadTls;
}

export const DEFAULT_NOMAD_ADDRESS = "http://127.0.0.1:4646";

/** NOMAD_* variables by name. */
export type NomadEnvironment = Readonly<Record<string, string | undefined>>;

/** Pure merge of options over environment; file contents are loaded through `readText`. */
export function resolveConnection(
  options: NomadConnectionOptions = {},
  env: NomadEnvironment = {},
  readText: (path: string) => string = (path) => readFileSync(path, "utf8"),
): NomadConnection {
  const pick = (explicit: string | undefined, name: string): string | undefined => explicit ?? nonEmpty(env[name]);
  const address = (pick(options.address, "NOMAD_ADDR") ?? DEFAULT_NOMAD_ADDRESS).replace(/\/+$/, "");
  if (!/^https?:\/\//.test(address)) {
    throw new SandboxError("configuration", `Nomad address must start with http:// or https://: ${address}`);
  }
  const pem = (value: string | undefined): string | undefined =>
    value === undefined ? undefined : value.includes("-----BEGIN") ? value : readText(value);
  const ca = pem(pick(options.caCert, "NOMAD_CACERT"));
  const cert = pem(pick(options.clientCert, "NOMAD_CLIENT_CERT"));
  const key = pem(pick(options.clientKey, "NOMAD_CLIENT_KEY"));
  if ((cert === undefined) !== (key === undefined)) {
    throw new SandboxError("configuration", "Nomad client certificate and key must be given together");
  }
  const skipVerify = options.skipVerify ?? parseBool(env.NOMAD_SKIP_VERIFY);
  const servername = pick(options.tlsServerName, "NOMAD_TLS_SERVER_NAME");
  const wantsTls = address.startsWith("https://") || ca !== undefined || cert !== undefined;
  const connection: NomadConnection = {
    address,
    namespace: pick(options.namespace, "NOMAD_NAMESPACE") ?? "default",
  };
  const token = pick(options.token, "NOMAD_TOKEN");
  if (token !== undefined) connection.token = token;
  const region = pick(options.region, "NOMAD_REGION");
  if (region !== undefined) connection.region = region;
  if (wantsTls) {
    connection.tls = { rejectUnauthorized: !skipVerify, ...defined({ ca, cert, key, servername }) };
  }
  return connection;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function parseBool(value: string | undefined): boolean {
  return value !== undefined && ["1", "true", "yes", "on"].includes(value.toLowerCase());
}

function defined<T extends Record<string, unknown>>(record: T): Partial<T> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as Partial<T>;
}
