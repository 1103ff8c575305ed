import { z } from "zod";
import type { ErrorCode, SandboxErrorKind } from "../../base/errors.ts";
import type { IsolationMode } from "../types.ts";

/**
 * Wire format of the sandbox server (the process each Nomad allocation and kubernetes sandbox pod runs). The server validates requests
 * with these schemas; the client sends exactly these shapes. Errors are `{error, code}` (code from src/base/errors.ts,
 * plus `kind` for a sandbox error) with the HTTP status: 400 bad input, 401 bad token, 403 path outside the
 * workspace, 404 unknown slot or missing file, 500 otherwise.
 */

const slotSchema = z.number().int().min(0);

export const execRequestSchema = z.object({
  slot: slotSchema,
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]),
  cwd: z.string().optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeoutMs: z.number().int().positive(),
  maxOutputBytes: z.number().int().positive().optional(),
  stdin: z.string().optional(),
  trusted: z.boolean().optional(),
});

/**
 * The server's argv for a pool's env (spec `env`): the process gets the values in its environment (Nomad task Env,
 * container env) and `--slot-env` names the ones slot commands get, so values stay out of argv.
 */
export function slotEnvArgs(env: Readonly<Record<string, string>> | undefined): string[] {
  const names = Object.keys(env ?? {});
  return names.length === 0 ? [] : ["--slot-env", names.join(",")];
}

export const batchRequestSchema = z.array(execRequestSchema).max(1000);
export const resetRequestSchema = z.object({ slot: slotSchema });
export const readFileRequestSchema = z.object({ slot: slotSchema, path: z.string().min(1) });
export const writeFileRequestSchema = z.object({ slot: slotSchema, path: z.string().min(1), contentBase64: z.string() });

export type WireExecRequest = z.infer<typeof execRequestSchema>;

export interface HealthResponse {
  status: "ok";
  slots: number;
  isolation: IsolationMode;
  message?: string;
}

export interface ReadFileResponse {
  contentBase64: string;
}

export interface ErrorResponse {
  error: string;
  /** Absent from servers older than the error catalogue. */
  code?: ErrorCode;
  kind?: SandboxErrorKind;
}

/** Header carrying the shared token: `Authorization: Bearer <token>`. */
export const AUTH_HEADER = "authorization";
