import { ServerError, Status, type CallContext, type ServerMiddlewareCall } from "nice-grpc";
import { Any, RPCRetryPolicy, RPCStatus } from "./generated/modal-internals.js";

/**
 * Auth and fault injection for the mock, as one nice-grpc server middleware. Faults are armed in-process
 * (`MockFaults` methods) or from a spec string (`--faults`, `MOCK_MODAL_FAULTS`), e.g.
 *   "unavailable=3@SandboxCreateV2,throttle=2x1.5@AppGetOrCreate,die-mid-exec=300"
 * Each rule fires on the next N calls whose method name matches (any method without `@Method`).
 */
export interface UnavailableRule {
  kind: "unavailable";
  count: number;
  method?: string;
}
export interface ThrottleRule {
  kind: "throttle";
  count: number;
  retryAfterSecs: number;
  method?: string;
}
export interface DieMidExecRule {
  kind: "die-mid-exec";
  count: number;
  afterMs: number;
}
export type FaultRule = UnavailableRule | ThrottleRule | DieMidExecRule;

const CONTROL_PLANE_PREFIX = "/modal.client.ModalClient/";

/** Parses the fault spec string; throws on anything it does not understand (a typo must not silently do nothing). */
export function parseFaultSpec(spec: string): FaultRule[] {
  const rules: FaultRule[] = [];
  for (const part of spec
    .split(",")
    .map((text) => text.trim())
    .filter(Boolean)) {
    const match = /^(unavailable|throttle|die-mid-exec)=([0-9.]+)(?:x([0-9.]+))?(?:@([A-Za-z0-9]+))?$/.exec(part);
    if (match === null) throw new Error(`bad fault rule ${JSON.stringify(part)}`);
    const [, kind, first = "", second, method] = match;
    const number = Number(first);
    if (kind === "unavailable") rules.push({ kind, count: number, ...(method ? { method } : {}) });
    else if (kind === "throttle") {
      if (second === undefined) throw new Error(`throttle needs COUNTxSECONDS: ${part}`);
      rules.push({ kind, count: number, retryAfterSecs: Number(second), ...(method ? { method } : {}) });
    } else rules.push({ kind: "die-mid-exec", count: 1, afterMs: number });
  }
  return rules;
}

export interface RecordedCall {
  method: string;
  at: number;
  throttleAttempt?: string;
  retryAttempt?: string;
  failedWith?: Status;
}

export interface AuthConfig {
  tokenId?: string;
  tokenSecret?: string;
  /** Router bearer tokens the control plane has handed out. */
  isRouterToken(token: string): boolean;
}

export class MockFaults {
  readonly calls: RecordedCall[] = [];
  private rules: FaultRule[] = [];

  arm(rules: readonly FaultRule[]): void {
    this.rules.push(...rules.map((rule) => ({ ...rule })));
  }

  unavailable(count: number, method?: string): void {
    this.arm([{ kind: "unavailable", count, ...(method ? { method } : {}) }]);
  }

  throttle(count: number, retryAfterSecs: number, method?: string): void {
    this.arm([{ kind: "throttle", count, retryAfterSecs, ...(method ? { method } : {}) }]);
  }

  /** The sandbox of the next exec started dies `afterMs` later, killing that exec. */
  dieMidExec(afterMs: number): void {
    this.arm([{ kind: "die-mid-exec", count: 1, afterMs }]);
  }

  clear(): void {
    this.rules = [];
    this.calls.length = 0;
  }

  callsTo(method: string): RecordedCall[] {
    return this.calls.filter((call) => call.method === method);
  }

  /** Consumes a pending die-mid-exec rule, returning its delay. */
  takeDieMidExec(): number | undefined {
    const rule = this.rules.find((candidate): candidate is DieMidExecRule => candidate.kind === "die-mid-exec" && candidate.count > 0);
    if (rule === undefined) return undefined;
    rule.count -= 1;
    return rule.afterMs;
  }

  private take(method: string): UnavailableRule | ThrottleRule | undefined {
    const rule = this.rules.find(
      (candidate): candidate is UnavailableRule | ThrottleRule =>
        candidate.kind !== "die-mid-exec" && candidate.count > 0 && (candidate.method === undefined || candidate.method === method),
    );
    if (rule !== undefined) rule.count -= 1;
    return rule;
  }

  middleware(auth: AuthConfig) {
    const faults = this;
    return async function* authAndFaults<Request, Response>(call: ServerMiddlewareCall<Request, Response>, context: CallContext) {
      const method = call.method.path.slice(call.method.path.lastIndexOf("/") + 1);
      const record: RecordedCall = { method, at: Date.now() };
      const throttleAttempt = context.metadata.get("x-throttle-retry-attempt");
      const retryAttempt = context.metadata.get("x-retry-attempt");
      if (throttleAttempt !== undefined) record.throttleAttempt = throttleAttempt;
      if (retryAttempt !== undefined) record.retryAttempt = retryAttempt;
      faults.calls.push(record);
      try {
        checkAuth(call.method.path, context, auth);
        const rule = faults.take(method);
        if (rule?.kind === "unavailable") throw new ServerError(Status.UNAVAILABLE, `injected fault: ${method} unavailable`);
        if (rule?.kind === "throttle") {
          context.trailer.set("grpc-status-details-bin", retryPolicyDetails(rule.retryAfterSecs));
          throw new ServerError(Status.RESOURCE_EXHAUSTED, `injected fault: ${method} throttled`);
        }
        return yield* call.next(call.request, context);
      } catch (error) {
        if (error instanceof ServerError) record.failedWith = error.code;
        throw error;
      }
    };
  }
}

function checkAuth(path: string, context: CallContext, auth: AuthConfig): void {
  if (path.startsWith(CONTROL_PLANE_PREFIX)) {
    if (auth.tokenId === undefined && auth.tokenSecret === undefined) return;
    const tokenId = context.metadata.get("x-modal-token-id");
    const tokenSecret = context.metadata.get("x-modal-token-secret");
    if (tokenId !== auth.tokenId || tokenSecret !== auth.tokenSecret) {
      throw new ServerError(Status.UNAUTHENTICATED, "invalid token id or secret");
    }
    return;
  }
  const bearer = context.metadata.get("authorization")?.replace(/^Bearer /, "") ?? "";
  if (!auth.isRouterToken(bearer)) throw new ServerError(Status.UNAUTHENTICATED, "invalid command router token");
}

/** A `google.rpc.Status` carrying `modal.client.RPCRetryPolicy`, the trailer the SDK honours for throttling. */
export function retryPolicyDetails(retryAfterSecs: number): Uint8Array {
  const policy = RPCRetryPolicy.encode(RPCRetryPolicy.fromPartial({ retryAfterSecs })).finish();
  const detail = Any.fromPartial({ typeUrl: "type.googleapis.com/modal.client.RPCRetryPolicy", value: policy });
  return RPCStatus.encode(RPCStatus.fromPartial({ code: Status.RESOURCE_EXHAUSTED, message: "throttled", details: [detail] })).finish();
}
