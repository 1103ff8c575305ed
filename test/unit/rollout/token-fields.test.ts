import assert from "node:assert/strict";
import { test } from "node:test";
import { createModelClient, readTokenFields, tokenIdFlags } from "../../../src/rollout/model-client.ts";
import type { ModelServerKind } from "../../../src/rollout/types.ts";
import { COMPLETION_IDS, PROMPT_IDS, startFakeChatServer, type FakeChatServerKind } from "../../support/fake-chat-servers.ts";

async function oneTurn(fake: FakeChatServerKind, server: ModelServerKind, logprobs: boolean) {
  const endpoint = await startFakeChatServer(fake);
  try {
    const client = createModelClient({
      baseURL: endpoint.baseURL,
      model: "m",
      toolCallFormat: "native",
      temperature: 1,
      topP: 1,
      maxTokens: 16,
      logprobs,
      server,
    });
    const turn = await client.complete({ messages: [{ role: "user", content: "hi" }], maxTokens: 16 });
    return { turn, request: endpoint.requests[0]! };
  } finally {
    await endpoint.close();
  }
}

test("each server kind is sent its own token-id flags, whatever the logprobs setting", async () => {
  for (const kind of ["vllm", "sglang"] as const) {
    for (const logprobs of [true, false]) {
      const { request } = await oneTurn(kind, kind, logprobs);
      for (const [flag, value] of Object.entries(tokenIdFlags(kind, logprobs))) assert.equal(request[flag], value, `${kind} ${flag}`);
      assert.equal(request.logprobs, logprobs ? true : undefined, `${kind} logprobs ${logprobs}`);
    }
  }
  assert.deepEqual(tokenIdFlags("vllm", false), { return_token_ids: true });
  assert.deepEqual(tokenIdFlags("sglang", false), { return_prompt_token_ids: true, return_token_ids: true });
  // A generic server may refuse a field it does not know: vLLM's flag goes only with logprobs, as before.
  assert.deepEqual(tokenIdFlags("openai", false), {});
  assert.deepEqual(tokenIdFlags("openai", true), { return_token_ids: true });
});

test("vLLM and SGLang give prompt and completion ids, with logprobs off too; logprobs only when asked", async () => {
  for (const kind of ["vllm", "sglang"] as const) {
    const on = await oneTurn(kind, kind, true);
    assert.deepEqual(on.turn.promptTokenIds, PROMPT_IDS, kind);
    assert.deepEqual(on.turn.completionTokenIds, COMPLETION_IDS, kind);
    assert.equal(on.turn.completionLogprobs?.length, COMPLETION_IDS.length, kind);
    const off = await oneTurn(kind, kind, false);
    assert.deepEqual(off.turn.promptTokenIds, PROMPT_IDS, `${kind} logprobs off`);
    assert.deepEqual(off.turn.completionTokenIds, COMPLETION_IDS, `${kind} logprobs off`);
    assert.equal(off.turn.completionLogprobs, undefined, `${kind} logprobs off`);
  }
});

test("token fields are read where each kind puts them", () => {
  const vllmResponse = { prompt_token_ids: [1, 2] };
  const vllmChoice = { token_ids: [3] };
  assert.deepEqual(readTokenFields("vllm", vllmResponse, vllmChoice), { promptTokenIds: [1, 2], completionTokenIds: [3] });
  // vLLM's ids are not where SGLang puts its prompt ids, and the reverse.
  assert.deepEqual(readTokenFields("sglang", vllmResponse, vllmChoice), { completionTokenIds: [3] });
  const sglangChoice = { prompt_token_ids: [1, 2], token_ids: [3] };
  assert.deepEqual(readTokenFields("sglang", {}, sglangChoice), { promptTokenIds: [1, 2], completionTokenIds: [3] });
  assert.deepEqual(readTokenFields("vllm", {}, sglangChoice), { completionTokenIds: [3] });
  // openai: any server; every known place is read.
  assert.deepEqual(readTokenFields("openai", vllmResponse, vllmChoice), { promptTokenIds: [1, 2], completionTokenIds: [3] });
  assert.deepEqual(readTokenFields("openai", {}, sglangChoice), { promptTokenIds: [1, 2], completionTokenIds: [3] });
  const asTokenIds = { logprobs: { content: [{ token: "token_id:7", logprob: -1 }] } };
  assert.deepEqual(readTokenFields("vllm", {}, asTokenIds), { completionLogprobs: [-1], completionTokenIds: [7] });
});
