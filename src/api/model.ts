/** spec.model of a RolloutJob: the policy endpoint, its sampling, and the tokenizer that makes generation token-in. */
import { z } from "zod";
import { dnsSubdomain, secretKeyRef } from "./common.ts";
import { has, withRules, type Rule } from "./rules.ts";

type ModelShape = { baseURL?: string; builtin?: unknown; tokenizer?: unknown; server: string };

export const modelRules: Rule<ModelShape>[] = [
  {
    rule: "has(self.baseURL) != has(self.builtin)",
    message: "set exactly one of model.baseURL and model.builtin",
    check: (s) => has(s, "baseURL") !== has(s, "builtin"),
  },
  {
    rule: "!has(self.tokenizer) || self.server == 'vllm' || self.server == 'sglang'",
    message: "model.tokenizer (token-in generation) needs model.server vllm or sglang: only their token endpoints take prompt ids",
    path: ["tokenizer"],
    check: (s) => !has(s, "tokenizer") || s.server === "vllm" || s.server === "sglang",
  },
];

const tokenizerSources = ["path", "configMap", "bundled", "huggingFace"] as const;

type TokenizerShape = Partial<Record<(typeof tokenizerSources)[number], unknown>>;

export const tokenizerRules: Rule<TokenizerShape>[] = [
  {
    rule: `[${tokenizerSources.map((k) => `has(self.${k})`).join(", ")}].filter(x, x).size() == 1`,
    message: "set exactly one of tokenizer.path, tokenizer.configMap, tokenizer.bundled and tokenizer.huggingFace",
    check: (s) => tokenizerSources.filter((k) => has(s, k)).length === 1,
  },
];

const tokenizerSource = z
  .object({
    path: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Directory holding the model's tokenizer.json and tokenizer_config.json (its chat_template there or in " +
          "chat_template.jinja), e.g. in the runner image.",
      ),
    configMap: z
      .object({ name: dnsSubdomain.describe("Name of a ConfigMap in the job's namespace.") })
      .strict()
      .optional()
      .describe(
        "A ConfigMap holding tokenizer.json and tokenizer_config.json (and optionally chat_template.jinja), in data or " +
          "binaryData, mounted read-only into every runner pod. A ConfigMap holds at most 1 MiB in all, so this suits " +
          "small tokenizers only: for a large vocabulary (Qwen3's tokenizer.json is 11 MB) use huggingFace, or path with " +
          "the files in the runner image. Not for hermes-rollouts run, which has no cluster: use path there.",
      ),
    bundled: z
      .enum(["qwen3"])
      .optional()
      .describe("A tokenizer shipped with hermes-rollouts (offline): qwen3 is Qwen3's vocabulary and chat template (Hermes tool format)."),
    huggingFace: z
      .object({
        model: z
          .string()
          .regex(/^[\w.-]+\/[\w.-]+$/, "must be owner/name")
          .describe("Hub model whose tokenizer files each runner fetches at start, e.g. NousResearch/Hermes-4-14B."),
        revision: z.string().min(1).default("main").describe("Branch, tag or commit of the model repository."),
        tokenSecretRef: secretKeyRef
          .optional()
          .describe("Secret key holding a Hub token (the runners' HF_TOKEN), for gated and private models."),
      })
      .strict()
      .optional()
      .describe("The tokenizer of a Hugging Face Hub model (HF_ENDPOINT and HF_TOKEN apply, as for datasets)."),
    templateKwargs: z
      .record(z.string(), z.union([z.boolean(), z.number(), z.string()]))
      .optional()
      .describe("Extra variables for the chat template, as chat_template_kwargs, e.g. {enable_thinking: false}."),
  })
  .strict();

const tokenizer = withRules(
  tokenizerSource.describe(
    "The policy's tokenizer and chat template, exactly one source. With it (and server vllm or sglang) generation is " +
      "token-in: the runner renders the template, keeps the ids the model sampled and sends prompt ids, so every " +
      "assistant turn trains in one sequence.",
  ),
  tokenizerRules,
);

export const model = withRules(
  z
    .object({
      baseURL: z
        .string()
        .regex(/^https?:\/\//, "must start with http:// or https://")
        .optional()
        .describe("OpenAI-compatible endpoint (vLLM, SGLang), e.g. http://vllm:8000/v1."),
      builtin: z
        .object({
          policy: z
            .enum(["oracle", "noop"])
            .describe("oracle applies the task's gold patch through tool calls; noop answers without acting."),
        })
        .strict()
        .optional()
        .describe("Use the built-in model endpoint, started inside each runner (no GPU, for CI and demos)."),
      model: z.string().min(1).default("hermes").describe("Model name sent with each request."),
      apiKeySecretRef: secretKeyRef.optional().describe("Secret key holding the endpoint's API key."),
      toolCallFormat: z
        .enum(["auto", "native", "hermes"])
        .default("auto")
        .describe("native: OpenAI tool_calls; hermes: <tool_call> JSON in the content; auto: accept both."),
      sampling: z
        .object({
          temperature: z.number().min(0).max(2).default(1).describe("Sampling temperature."),
          topP: z.number().gt(0).max(1).default(1).describe("Nucleus sampling probability mass."),
          maxTokens: z.int().min(1).max(1048576).default(4096).describe("Completion tokens per model turn."),
          seed: z.int().optional().describe("Sampling seed passed to the endpoint, when it supports one."),
        })
        .strict()
        .default({ temperature: 1, topP: 1, maxTokens: 4096 })
        .describe("Sampling parameters for every request."),
      logprobs: z.boolean().default(true).describe("Ask for token logprobs (needed by trainers that use inference logprobs)."),
      server: z
        .enum(["openai", "vllm", "sglang"])
        .default("openai")
        .describe(
          "The server behind baseURL, for the request fields that return token ids: vllm sends return_token_ids and " +
            "sglang return_prompt_token_ids and return_token_ids, whatever logprobs says; openai (any other " +
            "OpenAI-compatible server, which may refuse fields it does not know) sends vLLM's return_token_ids only " +
            "with logprobs. With model.tokenizer, vllm and sglang are sent token ids instead: vLLM's /v1/completions and " +
            "SGLang's /generate (at the server root, baseURL without /v1).",
        ),
      tokenizer: tokenizer.optional(),
    })
    .strict()
    .describe("The policy model the agent samples from."),
  modelRules,
);
