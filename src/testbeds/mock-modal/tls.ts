import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface MockTlsMaterial {
  /** The CA certificate file clients trust via GRPC_DEFAULT_SSL_ROOTS_FILE_PATH. */
  caFile: string;
  cert: Buffer;
  key: Buffer;
}

/** Every address the router may be reached at: loopback, this host's interfaces, and the advertised host. */
export function subjectAltNames(advertiseHost: string): string[] {
  const addresses = new Set(["127.0.0.1", "::1"]);
  for (const entries of Object.values(networkInterfaces()))
    for (const entry of entries ?? []) addresses.add(entry.address.replace(/%.*$/, ""));
  const names = new Set(["localhost"]);
  const isIp = /^[0-9.]+$|:/.test(advertiseHost);
  (isIp ? addresses : names).add(advertiseHost);
  return [...[...names].map((name) => `DNS:${name}`), ...[...addresses].map((address) => `IP:${address}`)];
}

/** A CA given from outside (e.g. a Kubernetes TLS Secret mounted read-only), so clients can trust it before we start. */
export interface MockCaFiles {
  certFile: string;
  keyFile: string;
}

/**
 * A server certificate made with the openssl CLI (Debian `openssl`) in `dir`, signed by `ca` when given, else by a
 * throwaway CA made here. The SDK dials a non-loopback router with real TLS, trusting only GRPC_DEFAULT_SSL_ROOTS_FILE_PATH.
 */
export async function generateTlsMaterial(dir: string, advertiseHost: string, ca?: MockCaFiles): Promise<MockTlsMaterial> {
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]) => run("openssl", args);
  const caCert = ca?.certFile ?? file("ca.pem");
  const caKey = ca?.keyFile ?? file("ca.key");
  if (!ca) {
    await openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "30",
      "-subj",
      "/CN=hermes-rollouts mock-modal CA",
      "-keyout",
      caKey,
      "-out",
      caCert,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  }
  await openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    "/CN=mock-modal",
    "-keyout",
    file("server.key"),
    "-out",
    file("server.csr"),
  );
  await writeFile(file("server.ext"), `subjectAltName=${subjectAltNames(advertiseHost).join(",")}\nextendedKeyUsage=serverAuth\n`);
  // The serial file goes into `dir`: a given CA's directory may be read-only.
  await openssl(
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    caCert,
    "-CAkey",
    caKey,
    "-CAserial",
    file("ca.srl"),
    "-CAcreateserial",
    "-days",
    "30",
    "-extfile",
    file("server.ext"),
    "-out",
    file("server.pem"),
  );
  return { caFile: caCert, cert: await readFile(file("server.pem")), key: await readFile(file("server.key")) };
}
