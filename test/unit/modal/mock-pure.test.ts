import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFaultSpec, retryPolicyDetails } from "../../../src/testbeds/mock-modal/faults.ts";
import { mintId } from "../../../src/testbeds/mock-modal/sandboxes.ts";
import { isLoopbackPeer } from "../../../src/testbeds/mock-modal/state.ts";
import { RPCRetryPolicy, RPCStatus } from "../../../src/testbeds/mock-modal/generated/modal-internals.js";
import { Semaphore } from "../../../src/backends/modal/semaphore.ts";

test("fault specs parse, and a typo is an error rather than silence", () => {
  assert.deepEqual(parseFaultSpec("unavailable=3@SandboxCreateV2, throttle=2x1.5, die-mid-exec=300"), [
    { kind: "unavailable", count: 3, method: "SandboxCreateV2" },
    { kind: "throttle", count: 2, retryAfterSecs: 1.5 },
    { kind: "die-mid-exec", count: 1, afterMs: 300 },
  ]);
  assert.deepEqual(parseFaultSpec(""), []);
  assert.throws(() => parseFaultSpec("unavailible=3"), /bad fault rule/);
  assert.throws(() => parseFaultSpec("throttle=2"), /COUNTxSECONDS/);
});

test("the throttle trailer is a google.rpc.Status holding a modal.client.RPCRetryPolicy", () => {
  const status = RPCStatus.decode(retryPolicyDetails(2.5));
  assert.equal(status.details.length, 1);
  const detail = status.details[0]!;
  assert.equal(detail.typeUrl, "type.googleapis.com/modal.client.RPCRetryPolicy");
  assert.equal(RPCRetryPolicy.decode(detail.value).retryAfterSecs, 2.5);
});

test("ids follow the SDK's V1/V2 rule: sb- plus 22 base62 is V1, longer is V2", () => {
  assert.match(mintId("sb"), /^sb-[0-9A-Za-z]{22}$/);
  assert.match(mintId("sb", 26), /^sb-[0-9A-Za-z]{26}$/);
});

test("loopback peers are told apart from remote ones", () => {
  for (const peer of ["ipv4:127.0.0.1:5000", "127.0.0.1:5000", "ipv6:[::1]:5000", "ipv6:[::ffff:127.0.0.1]:5000"])
    assert.ok(isLoopbackPeer(peer), peer);
  for (const peer of ["ipv4:192.0.2.2:5000", "ipv6:[fd00::2]:5000"]) assert.ok(!isLoopbackPeer(peer), peer);
});

test("the create semaphore never exceeds its limit and serves waiters in order", async () => {
  const limit = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 6 }, (_, index) =>
      limit.run(async () => {
        running++;
        peak = Math.max(peak, running);
        order.push(index);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
      }),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  assert.throws(() => new Semaphore(0));
});
