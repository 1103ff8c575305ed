/**
 * Where scored groups go, behind one interface: a JSONL file, or an Atropos-compatible trainer API
 * (atroposlib/api/server.py: POST /register-env, GET /info, POST /scored_data).
 */
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { gzipSync } from "node:zlib";
import type { RolloutJobSpec } from "../api/index.ts";
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
  /** The over-length rule's limit when the trainer's /info gives no max_token_len. */
  maxTokenLength: number;
  weight?: number;
  /** Leave out groups (of more than one trajectory) whose scores are all equal. */
  dropUniformGroups?: boolean;
  /** Leave out groups in which a trajectory's token sequence restarted (hasTokenRestarts). */
  holdBackTokenRestarts?: boolean;
  /** How long to wait for the trainer to accept the registration. */
  registerTimeoutMs?: number;
  retryDelayMs?: number;
}

/**
 * A trajectory's tokens restarted: some turn's prompt did not extend the tokens before it, so the sequence sent holds
 * only the last part of the conversation, conditioned on a history the model did not write. Such a group is not a
 * faithful sample of the policy.
 */
export function hasTokenRestarts(group: Pick<ScoredDataGroup, "metadata">): boolean {
  return group.metadata.trajectories.some((trajectory) => trajectory.token_restarts > 0);
}

/** Which groups a job holds back from its trainer for token restarts; undefined when it holds none back. */
export function tokenRestartHoldBack(results: RolloutJobSpec["results"]): ((group: ScoredDataGroup) => boolean) | undefined {
  return results.type === "atropos" && results.holdBackTokenRestarts ? hasTokenRestarts : undefined;
}

/**
 * Why this group is not sent to the trainer, if it is not: what atroposlib's serve loop leaves out (over-length,
 * equal scores), which the trainer expects the same of us, and groups with token restarts when held back.
 */
export function atroposSkipReason(
  group: Pick<ScoredDataGroup, "tokens" | "scores" | "metadata">,
  options: { maxTokenLength: number; dropUniformGroups: boolean; holdBackTokenRestarts: boolean },
): string | undefined {
  if (options.holdBackTokenRestarts && hasTokenRestarts(group)) {
    return "a trajectory's token sequence restarted (results.holdBackTokenRestarts)";
  }
  if (options.maxTokenLength > 0 && group.tokens.some((tokens) => tokens.length >= options.maxTokenLength)) {
    return `a sequence reaches the length limit (${options.maxTokenLength} tokens)`;
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
  /** The over-length limit: the trainer's /info max_token_len once known, else the job's maxTokenLength. */
  #maxTokenLength: number;

  constructor(options: AtroposSinkOptions) {
    this.#options = options;
    this.#maxTokenLength = options.maxTokenLength;
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
    // atroposlib's BaseEnv.get_server_info takes max_token_len from /info unless it is -1 (the trainer has not said).
    if (typeof info.max_token_len === "number" && info.max_token_len > 0) this.#maxTokenLength = info.max_token_len;
    log.info({ url: this.location, envId: this.#registration.env_id, info }, "registered with the trainer");
  }

  async write(group: ScoredDataGroup): Promise<void> {
    const registration = this.#registration;
    if (!registration) throw new Error("AtroposSink.write before open");
    if (!hasTokens(group)) {
      throw new Error(`item ${group.metadata.item_id}: the endpoint returned no token ids, so the group cannot be sent to a trainer`);
    }
    const skip = atroposSkipReason(group, {
      maxTokenLength: this.#maxTokenLength,
      dropUniformGroups: this.#options.dropUniformGroups ?? false,
      holdBackTokenRestarts: this.#options.holdBackTokenRestarts ?? false,
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
