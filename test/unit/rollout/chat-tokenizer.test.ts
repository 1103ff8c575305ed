import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { validateRolloutJobSpec } from "../../../src/api/index.ts";
import {
  bundledTokenizerDirectory,
  fetchChatTokenizer,
  loadChatTokenizer,
  tokenizerFromSpec,
} from "../../../src/rollout/chat-tokenizer.ts";

const qwen3 = bundledTokenizerDirectory("qwen3");
const config = JSON.parse(readFileSync(join(qwen3, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;

/** A Hub holding one model the way transformers 4.43+ saves it: the template in chat_template.jinja. */
function hub(seen: { url: string; auth: string | null }[]): typeof fetch {
  const { chat_template: template, ...rest } = config;
  const files: Record<string, string> = {
    "tokenizer.json": readFileSync(join(qwen3, "tokenizer.json"), "utf8"),
    "tokenizer_config.json": JSON.stringify(rest),
    "chat_template.jinja": template as string,
  };
  return async (input, init) => {
    const url = String(input);
    seen.push({ url, auth: new Headers(init?.headers).get("authorization") });
    const match = /^https:\/\/hub\.test\/acme\/qwen\/resolve\/v1\/(.+)$/.exec(url);
    const body = match ? files[match[1]!] : undefined;
    return body === undefined ? new Response("Entry not found", { status: 404 }) : new Response(body);
  };
}

test("huggingFace: the files come from <endpoint>/<model>/resolve/<revision>/, the template from chat_template.jinja", async () => {
  const seen: { url: string; auth: string | null }[] = [];
  const fetched = await fetchChatTokenizer("acme/qwen", "v1", { endpoint: "https://hub.test/", token: "hf_x", fetch: hub(seen) });
  const local = loadChatTokenizer(qwen3);
  const messages = [{ role: "user" as const, content: "hi" }];
  assert.equal(fetched.render(messages, { addGenerationPrompt: true }), local.render(messages, { addGenerationPrompt: true }));
  assert.deepEqual(fetched.encode("<think>\nok\n</think>"), local.encode("<think>\nok\n</think>"));
  assert.ok(seen.every((s) => s.auth === "Bearer hf_x"));
  assert.deepEqual(
    seen.map((s) => s.url.split("/").at(-1)),
    ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"],
  );
});

test("huggingFace: a refused download names the field, the model and the status", async () => {
  const refuse: typeof fetch = async () => new Response("gated", { status: 401 });
  await assert.rejects(
    fetchChatTokenizer("acme/gated", "main", { fetch: refuse }),
    (error: Error) =>
      error.message ===
      "model.tokenizer.huggingFace: acme/gated@main: GET https://huggingface.co/acme/gated/resolve/main/tokenizer.json answered 401",
  );
});

test("path: a directory without tokenizer.json names the field and the file", () => {
  assert.throws(
    () => loadChatTokenizer("/nonexistent/model"),
    /^Error: model\.tokenizer: \/nonexistent\/model: tokenizer\.json is missing/,
  );
});

test("configMap: read from where the operator mounts it, laid out as the kubelet writes a ConfigMap volume", async () => {
  // AtomicWriter's layout: the keys in a timestamped directory, `..data` pointing at it, each key a link through `..data`.
  const mount = mkdtempSync(join(tmpdir(), "tokenizer-configmap-"));
  try {
    const { chat_template: template, ...rest } = config;
    const payload = join(mount, "..2026_12_06_03_00_00.000000001");
    mkdirSync(payload);
    symlinkSync(join(qwen3, "tokenizer.json"), join(payload, "tokenizer.json"));
    writeFileSync(join(payload, "tokenizer_config.json"), JSON.stringify(rest));
    writeFileSync(join(payload, "chat_template.jinja"), template as string);
    symlinkSync(payload, join(mount, "..data"));
    for (const key of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
      symlinkSync(join("..data", key), join(mount, key));

    const job = validateRolloutJobSpec({
      poolRef: { name: "local" },
      environment: { name: "swe-smith-oracle" },
      dataset: { bundled: "swe-smith-mini" },
      model: { baseURL: "http://vllm:8000/v1", server: "vllm", tokenizer: { configMap: { name: "tiny-tokenizer" } } },
    });
    assert.ok(job.ok);
    const model = job.value.model;
    const mounted = (await tokenizerFromSpec(model, { configMapDirectory: mount }))!;
    const messages = [{ role: "user" as const, content: "hi" }];
    const local = loadChatTokenizer(qwen3);
    assert.equal(mounted.render(messages, { addGenerationPrompt: true }), local.render(messages, { addGenerationPrompt: true }));

    await assert.rejects(
      tokenizerFromSpec(model, { configMapDirectory: join(mount, "elsewhere") }),
      /^Error: model\.tokenizer\.configMap: ConfigMap tiny-tokenizer \(mounted at .*elsewhere\): tokenizer\.json is missing/,
    );
    await assert.rejects(
      tokenizerFromSpec(model),
      /model\.tokenizer\.configMap: ConfigMap tiny-tokenizer is mounted into runner pods only/,
    );
  } finally {
    rmSync(mount, { recursive: true, force: true });
  }
});
