import { pino, type Logger } from "pino";

/** One JSON logger for every role; `LOG_LEVEL` tunes it, children add `component`. */
export const rootLogger: Logger = pino({
  level: process.env.LOG_LEVEL ?? "info",
  base: { app: "hermes-rollouts" },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export function logger(component: string): Logger {
  return rootLogger.child({ component });
}

export type { Logger };
