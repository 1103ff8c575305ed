import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";

const LOG_MODULE = new URL("../../../src/base/log.ts", import.meta.url).href;

/** Every credential shape a role might log by accident, each with its own planted value. */
const RECORDS = String.raw`
import { logger } from ${JSON.stringify(LOG_MODULE)};
const log = logger("redaction-test");
log.info({ token: "planted-token", apiKey: "planted-apikey", secret: "planted-secret", password: "planted-password" }, "top level");
log.info({ options: { sandboxToken: "planted-sandbox", aclToken: "planted-acl", tokenSecret: "planted-modal-secret" } }, "nested");
log.info({ request: { headers: { authorization: "Bearer planted-bearer", cookie: "planted-cookie" } } }, "headers");
log.warn({ err: { config: { headers: { Authorization: "Bearer planted-axios" } } } }, "three deep");
log.info({ env: { MODAL_TOKEN_ID: "planted-modal-id", MODAL_TOKEN_SECRET: "planted-modal-secret2", NOMAD_TOKEN: "planted-nomad",
  HF_TOKEN: "planted-hf", HERMES_SANDBOX_TOKEN: "planted-hermes", OPENAI_API_KEY: "planted-openai" } }, "environment");
log.info({ tokens: [1, 2, 3], maxTokens: 7, tokenId: "planted-modal-token-id" }, "token counts stay");
`;

test("the logger redacts credential fields wherever a record carries them, and keeps token counts", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", RECORDS], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "info" },
  });
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 6, stdout);
  assert.doesNotMatch(stdout, /planted/);
  assert.match(stdout, /"token":"\[redacted\]"/);
  assert.match(stdout, /"NOMAD_TOKEN":"\[redacted\]"/);
  const last = JSON.parse(lines.at(-1) ?? "") as { tokens: number[]; maxTokens: number };
  assert.deepEqual([last.tokens, last.maxTokens], [[1, 2, 3], 7]);
});
