import { pino, type Logger } from "pino";

/** One JSON logger for every role; the CLI sets its level (LOG_LEVEL), children add `component`. */
export const rootLogger: Logger = pino({
  level: "info",
  base: { app: "hermes-rollouts" },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export function logger(component: string): Logger {
  return rootLogger.child({ component });
}

/** Children follow the root's level unless given their own, so this applies to loggers made before it too. */
export function setLogLevel(level: string): void {
  rootLogger.level = level;
}

export type { Logger };
