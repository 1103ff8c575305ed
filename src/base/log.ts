import { pino, type Logger } from "pino";

/** Keys whose values are credentials wherever they appear in a log record (a backstop: nothing should log them). */
const CREDENTIAL_KEYS = [
  "token",
  "sandboxToken",
  "aclToken",
  "tokenId",
  "tokenSecret",
  "apiKey",
  "api_key",
  "modelApiKey",
  "authorization",
  "Authorization",
  "cookie",
  "secret",
  "password",
  "credentials",
  "MODAL_TOKEN_ID",
  "MODAL_TOKEN_SECRET",
  "NOMAD_TOKEN",
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "HERMES_SANDBOX_TOKEN",
  "HERMES_MODEL_API_KEY",
  "OPENAI_API_KEY",
];
// pino's wildcards match one level each: a credential key up to three objects deep (e.g. err.config.headers.authorization).
const REDACTED_PATHS = CREDENTIAL_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`]);

/** One JSON logger for every role; the CLI sets its level (LOG_LEVEL), children add `component`. */
export const rootLogger: Logger = pino({
  level: "info",
  base: { app: "hermes-rollouts" },
  timestamp: pino.stdTimeFunctions.isoTime,
  redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
});

export function logger(component: string): Logger {
  return rootLogger.child({ component });
}

/** Children follow the root's level unless given their own, so this applies to loggers made before it too. */
export function setLogLevel(level: string): void {
  rootLogger.level = level;
}

export type { Logger };
