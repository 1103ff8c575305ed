import { classifyFetchFailure } from "../fetch-errors.ts";
import { SandboxError, type SandboxErrorKind } from "../../base/errors.ts";

/**
 * Every failure of a Nomad API call, classified once. Nomad answers errors as `text/plain` bodies with the
 * status code; the kind depends on both (a 400 "active deployment" is transient, a 500 about a missing
 * namespace is configuration).
 */
export class NomadApiError extends SandboxError {
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string, what: string) {
    super(kindForNomadError(status, body), `${what}: ${status} ${body.trim() || "(empty body)"}`);
    this.name = "NomadApiError";
    this.status = status;
    this.body = body;
  }
}

const transientBodies = [/active deployment/i, /no cluster leader/i, /rpc error/i, /timeout/i, /EOF/];
const configurationBodies = [/namespace/i, /permission denied/i, /acl token/i, /invalid/i, /validation/i];

export function kindForNomadError(status: number, body: string): SandboxErrorKind {
  if (status === 404) return "gone";
  if (status === 429) return "capacity";
  if (status === 400 && transientBodies[0]!.test(body)) return "transient";
  if (status >= 400 && status < 500) return "configuration";
  if (transientBodies.some((pattern) => pattern.test(body))) return "transient";
  if (configurationBodies.some((pattern) => pattern.test(body))) return "configuration";
  return "transient";
}

/** Check-and-set register (`EnforceIndex` with index 0) lost the race: the job already exists. */
export function isJobExistsConflict(error: unknown): boolean {
  return error instanceof NomadApiError && /enforcing job modify index/i.test(error.body);
}

/** A failure before any HTTP answer: Nomad unreachable is transient (the sandboxes may be fine), bad TLS is config. */
export function classifyTransportError(error: unknown, what: string): SandboxError {
  return classifyFetchFailure(error, what, [
    { kind: "configuration", codes: /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_TLS_|ERR_SSL_)/ },
  ]);
}
