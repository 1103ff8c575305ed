import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  DatasetError,
  ERROR_CODES,
  GroupFailedError,
  HermesError,
  HttpError,
  InfrastructureError,
  InvalidItemError,
  LeaseLostError,
  ManifestError,
  ModelRequestError,
  RunnersApiError,
  SandboxError,
  TrainerRejectedError,
  describeError,
  errorAnswer,
  errorCode,
  errorMessage,
  isInfrastructureError,
  isSandboxError,
  type ErrorCode,
  type HttpErrorCode,
} from "../../../src/base/errors.ts";

const codes = Object.keys(ERROR_CODES) as ErrorCode[];
const httpCodes = codes.filter((code) => code !== "HR_LEASE_LOST" && "status" in ERROR_CODES[code]) as HttpErrorCode[];

/** One instance of every catalogued class, each kind and source included: [class name, error, its code]. */
const instances: Array<[string, HermesError, ErrorCode]> = [
  ["SandboxError", new SandboxError("gone", "m"), "HR_SANDBOX_GONE"],
  ["SandboxError", new SandboxError("transient", "m"), "HR_SANDBOX_TRANSIENT"],
  ["SandboxError", new SandboxError("capacity", "m"), "HR_SANDBOX_CAPACITY"],
  ["SandboxError", new SandboxError("configuration", "m"), "HR_SANDBOX_CONFIGURATION"],
  ["LeaseLostError", new LeaseLostError("m"), "HR_LEASE_LOST"],
  ["InfrastructureError", new InfrastructureError("setup", "m"), "HR_INFRA_SETUP"],
  ["InfrastructureError", new InfrastructureError("verify", "m"), "HR_INFRA_VERIFY"],
  ["InfrastructureError", new InfrastructureError("sandbox", "m"), "HR_INFRA_SANDBOX"],
  ["InfrastructureError", new InfrastructureError("model", "m"), "HR_INFRA_MODEL"],
  ["ModelRequestError", new ModelRequestError("m"), "HR_MODEL_REQUEST"],
  ["InvalidItemError", new InvalidItemError("m"), "HR_ITEM_INVALID"],
  ["GroupFailedError", new GroupFailedError("item", 3, "m"), "HR_GROUP_FAILED"],
  ["DatasetError", new DatasetError("m"), "HR_DATASET_UNREADABLE"],
  ["ManifestError", new ManifestError("m"), "HR_MANIFEST_INVALID"],
  ["TrainerRejectedError", new TrainerRejectedError("m"), "HR_TRAINER_REJECTED"],
  ["RunnersApiError", new RunnersApiError(418, "m"), "HR_RUNNERS_API"],
  ...httpCodes.map((code): [string, HermesError, ErrorCode] => ["HttpError", new HttpError(code, "m"), code]),
];

test("the catalogue: codes are HR_ names, the count is pinned, each has a meaning and any status is an HTTP error status", () => {
  // Adding or retiring a code is a deliberate change: update this count with it (and never reuse a retired code).
  assert.equal(codes.length, 28);
  for (const code of codes) {
    assert.match(code, /^HR_[A-Z]+(_[A-Z]+)*$/);
    const entry: { meaning: string; status?: number } = ERROR_CODES[code];
    assert.ok(entry.meaning.length > 20, `${code} says what it means`);
    if (entry.status !== undefined) assert.ok(Number.isInteger(entry.status) && entry.status >= 400 && entry.status < 600, code);
  }
});

test("every class carries its code, the code's status and its own name, and every code has a class that raises it", () => {
  for (const [name, error, code] of instances) {
    assert.ok(error instanceof HermesError && error instanceof Error, name);
    assert.equal(error.name, name);
    assert.equal(error.code, code, name);
    assert.equal(error.statusCode, (ERROR_CODES[code] as { status?: number }).status, code);
  }
  const raised = new Set<ErrorCode>([...instances.map(([, , code]) => code), errorCode(new Error("foreign"))]);
  assert.deepEqual([...raised].sort(), [...codes].sort());
});

test("the checks callers rely on still tell the classes apart", () => {
  const gone = new SandboxError("gone", "m");
  assert.ok(isSandboxError(gone) && isSandboxError(gone, "gone") && !isSandboxError(gone, "capacity"));
  assert.ok(!isSandboxError(new LeaseLostError("m")) && !isSandboxError(new Error("m")));
  assert.ok(isInfrastructureError(new InfrastructureError("model", "m")) && !isInfrastructureError(gone));
  assert.equal(new RunnersApiError(410, "m").status, 410);
  assert.equal(new HttpError("HR_JOB_NOT_SERVED", "m").statusCode, 503);
  const cause = new Error("root");
  assert.equal(new DatasetError("m", { cause }).cause, cause);
  assert.ok(!("cause" in new DatasetError("m")));
});

test("errorMessage: an Error's message, anything else as text", () => {
  assert.equal(errorMessage(new Error("boom")), "boom");
  assert.equal(errorMessage(new SandboxError("gone", "no sandbox")), "no sandbox");
  assert.equal(errorMessage("plain text"), "plain text");
  assert.equal(errorMessage({ reason: "x" }), "[object Object]");
  assert.equal(errorMessage(undefined), "undefined");
  assert.equal(errorMessage(null), "null");
});

test("describeError adds the code for people to look up; foreign errors stay as they are", () => {
  assert.equal(describeError(new DatasetError("no such key")), "no such key [HR_DATASET_UNREADABLE]");
  assert.equal(describeError(new Error("boom")), "boom");
  assert.equal(describeError("text"), "text");
});

test("errorAnswer: { error, code }, a sandbox error's kind, an HttpError's fields; foreign errors are HR_INTERNAL", () => {
  assert.deepEqual(errorAnswer(new Error("boom")), { error: "boom", code: "HR_INTERNAL" });
  assert.deepEqual(errorAnswer(new SandboxError("capacity", "full")), { error: "full", code: "HR_SANDBOX_CAPACITY", kind: "capacity" });
  assert.deepEqual(errorAnswer(new HttpError("HR_POOL_NOT_READY", "wait", { retry: true })), {
    error: "wait",
    code: "HR_POOL_NOT_READY",
    retry: true,
  });
  assert.deepEqual(JSON.parse(JSON.stringify(errorAnswer(new HttpError("HR_JOB_NOT_SERVED", "no", { leaderURL: undefined })))), {
    error: "no",
    code: "HR_JOB_NOT_SERVED",
  });
});

test("docs/operations.md lists every code with its status, and no code the catalogue lacks", () => {
  const docs = readFileSync(new URL("../../../docs/operations.md", import.meta.url), "utf8");
  const rows = [...docs.matchAll(/^\| `(HR_[A-Z_]+)` \| (\d*) \|/gm)].map(([, code, status]) => `${code} ${status}`);
  const catalogue = codes.map((code) => `${code} ${(ERROR_CODES[code] as { status?: number }).status ?? ""}`);
  assert.deepEqual(rows.sort(), catalogue.sort());
});
