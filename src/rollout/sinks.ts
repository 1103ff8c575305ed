/**
 * Where scored groups go, behind one interface: a JSONL file, or an Atropos-compatible trainer API
 * (atroposlib/api/server.py: POST /register-env, GET /info, POST /scored_data).
 */
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { gzipSync } from "node:zlib";
import { logger } from "../base/log.ts";
import { hasTokens, type ScoredDataGroup } from "./scored.ts";
import { errorMessage, TrainerRejectedError } from "../base/errors.ts";

const log = logger("sink");

export interface ScoredSink {
  /** Where the groups go, for summaries and status. */
  readonly location: string;
  open(): Promise<void>;
  write(group: ScoredDataGroup): Promise<void>;
  close(): Promise<void>;
}

export class JsonlSink implements ScoredSink {
  readonly location: string;
  #file: FileHandle | undefined;
  constructor(path: string) {
    this.location = path;
  }
  async open(): Promise<void> {
    await mkdir(dirname(this.location), { recursive: true });
    this.#file = await open(this.location, "a");
  }
  async write(group: ScoredDataGroup): Promise<void> {
    if (!this.#file) throw new Error("JsonlSink.write before open");
    await this.#file.appendFile(`${JSON.stringify(group)}\n`);
  }
  async close(): Promise<void> {
    await this.#file?.close();
    this.#file = undefined;
  }
}

export interface AtroposSinkOptions {
  url: string;
  /** desired_name of the env at the trainer. */
  name: string;
  groupSize: number;
  maxTokenLength: number;
  weight?: number;
  /** Leave out groups (of more than one trajectory) whose scores are all equal. */
  dropUniformGroups?: boolean;
  /** How long to wait for the trainer to accept the registration. */
  registerTimeoutMs?: number;
  retryDelayMs?: number;
}

/** Why atroposlib's serve loop would not send this group, if it would not: the trainer expects the same of us. */
export function atroposSkipReason(
  group: Pick<ScoredDataGroup, "tokens" | "scores">,
  options: { maxTokenLength: number; dropUniformGroups: boolean },
): string | undefined {
  if (options.maxTokenLength > 0 && group.tokens.some((tokens) => tokens.length >= options.maxTokenLength)) {
    return `a sequence reaches maxTokenLength (${options.maxTokenLength} tokens)`;
  }
  if (options.dropUniformGroups && group.scores.length > 1 && group.scores.every((score) => score === group.scores[0])) {
    return `every score is ${group.scores[0]}: nothing to compare`;
  }
  return undefined;
}

export interface AtroposRegistration {
  env_id: number;
  wandb_name?: string;
  starting_step?: number;
  checkpoint_dir?: string;
  num_steps?: number;
}

const GZIP_MIN_BYTES = 1024;

const POST_ATTEMPTS = 4;

/** The trainer-facing payload: ScoredDataGroup's Atropos fields; our metadata stays in the JSONL sink. */
export function atroposPayload(group: ScoredDataGroup, envId: number): Record<string, unknown> {
  const { metadata: _metadata, ...fields } = group;
  return { ...fields, env_id: envId };
}

export class AtroposSink implements ScoredSink {
  readonly location: string;
  readonly #options: AtroposSinkOptions;
  #registration: AtroposRegistration | undefined;
  /** Groups not sent because the trainer would not want them (atroposSkipReason). */
  skipped = 0;

  constructor(options: AtroposSinkOptions) {
    this.#options = options;
    this.location = options.url.replace(/\/+$/, "");
  }

  get registration(): AtroposRegistration | undefined {
    return this.#registration;
  }

  async #request(method: "GET" | "POST", path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    let payload: Uint8Array | undefined;
    if (body !== undefined) {
      const json = Buffer.from(JSON.stringify(body));
      const gz = json.length >= GZIP_MIN_BYTES ? gzipSync(json) : undefined;
      payload = gz && gz.length < json.length ? gz : json;
      headers["content-type"] = "application/json";
      if (payload === gz) headers["content-encoding"] = "gzip";
    }
    return fetch(`${this.location}${path}`, { method, headers, ...(payload ? { body: payload } : {}) });
  }

  /** Retries connection errors and 5xx, as atroposlib does for scored data. */
  async #withRetries(what: string, call: () => Promise<Response>): Promise<Response> {
    const delay = this.#options.retryDelayMs ?? 1000;
    for (let attempt = 1; ; attempt++) {
      let failure: string;
      try {
        const response = await call();
        if (response.status < 500) {
          if (!response.ok) throw new TrainerRejectedError(`${what}: trainer answered ${response.status}: ${await response.text()}`);
          return response;
        }
        failure = `HTTP ${response.status}`;
      } catch (error) {
        if (error instanceof TrainerRejectedError) throw error;
        failure = errorMessage(error);
      }
      if (attempt >= POST_ATTEMPTS) throw new Error(`${what}: trainer unavailable after ${attempt} attempts: ${failure}`);
      await new Promise((r) => setTimeout(r, delay * 2 ** (attempt - 1)));
    }
  }

  async open(): Promise<void> {
    const deadline = Date.now() + (this.#options.registerTimeoutMs ?? 120_000);
    const body = {
      max_token_length: this.#options.maxTokenLength,
      desired_name: this.#options.name,
      weight: this.#options.weight ?? 1.0,
      group_size: this.#options.groupSize,
      min_batch_allocation: null,
    };
    for (;;) {
      const answer = (await (await this.#withRetries("register-env", () => this.#request("POST", "/register-env", body))).json()) as Record<
        string,
        unknown
      >;
      if (answer.status === "success" && typeof answer.env_id === "number") {
        this.#registration = answer as unknown as AtroposRegistration;
        break;
      }
      // "wait for trainer to start": atroposlib polls every second.
      if (Date.now() > deadline) throw new Error(`register-env: trainer did not accept the env: ${JSON.stringify(answer)}`);
      await new Promise((r) => setTimeout(r, this.#options.retryDelayMs ?? 1000));
    }
    const info = (await (await this.#withRetries("info", () => this.#request("GET", "/info"))).json()) as Record<string, unknown>;
    const batchSize = typeof info.batch_size === "number" ? info.batch_size : -1;
    if (batchSize > 0 && this.#options.groupSize > batchSize) {
      throw new Error(`groupSize ${this.#options.groupSize} exceeds the trainer's batch_size ${batchSize}`);
    }
    log.info({ url: this.location, envId: this.#registration.env_id, info }, "registered with the trainer");
  }

  async write(group: ScoredDataGroup): Promise<void> {
    const registration = this.#registration;
    if (!registration) throw new Error("AtroposSink.write before open");
    if (!hasTokens(group)) {
      throw new Error(`item ${group.metadata.item_id}: the endpoint returned no token ids, so the group cannot be sent to a trainer`);
    }
    const skip = atroposSkipReason(group, {
      maxTokenLength: this.#options.maxTokenLength,
      dropUniformGroups: this.#options.dropUniformGroups ?? false,
    });
    if (skip !== undefined) {
      this.skipped++;
      log.info({ item: group.metadata.item_id, reason: skip, skipped: this.skipped }, "group not sent to the trainer");
      return;
    }
    await this.#withRetries("scored_data", () => this.#request("POST", "/scored_data", atroposPayload(group, registration.env_id)));
  }

  async close(): Promise<void> {}
}
