import { test } from "node:test";
import assert from "node:assert/strict";
import { AlreadyExistsError, ConflictError, InvalidError, NotFoundError, ResourceExhaustedError } from "modal";
import { ClientError, Status } from "nice-grpc";
import { modalErrorKind, toSandboxError } from "../../../src/backends/modal/errors.ts";
import { SandboxError } from "../../../src/base/errors.ts";

const grpc = (code: Status) => new ClientError("/modal.client.ModalClient/X", code, "detail");

test("gRPC codes map to the four kinds as modal-sdk.md section 8 says", () => {
  assert.equal(modalErrorKind(grpc(Status.NOT_FOUND)), "gone");
  assert.equal(modalErrorKind(grpc(Status.FAILED_PRECONDITION)), "gone");
  assert.equal(modalErrorKind(grpc(Status.UNAVAILABLE)), "transient");
  assert.equal(modalErrorKind(grpc(Status.DEADLINE_EXCEEDED)), "transient");
  assert.equal(modalErrorKind(grpc(Status.RESOURCE_EXHAUSTED)), "capacity");
  assert.equal(modalErrorKind(grpc(Status.UNAUTHENTICATED)), "configuration");
  assert.equal(modalErrorKind(grpc(Status.PERMISSION_DENIED)), "configuration");
});

test("the SDK's own error classes map too", () => {
  assert.equal(modalErrorKind(new NotFoundError("x")), "gone");
  assert.equal(modalErrorKind(new ConflictError("x")), "gone");
  assert.equal(modalErrorKind(new ResourceExhaustedError("x")), "capacity");
  assert.equal(modalErrorKind(new InvalidError("x")), "configuration");
  assert.equal(modalErrorKind(new AlreadyExistsError("x")), "transient");
  assert.equal(modalErrorKind(new Error("Profile is missing credentials")), "configuration");
  assert.equal(modalErrorKind(new Error("socket hang up")), "transient");
});

test("toSandboxError keeps SandboxErrors and names the operation and code otherwise", () => {
  const original = new SandboxError("gone", "already classified");
  assert.equal(toSandboxError(original, "exec"), original);
  const wrapped = toSandboxError(grpc(Status.UNAVAILABLE), "create pool-0");
  assert.equal(wrapped.kind, "transient");
  assert.match(wrapped.message, /modal create pool-0: UNAVAILABLE: detail/);
  assert.ok(wrapped.cause instanceof ClientError);
});
