/**
 * The `shell-task` environment: an item states a goal in words and a check command; the score is 1.0 when the
 * check exits 0 in the slot workspace after the agent's turn. It proves the Environment interface with no git.
 */
import { z } from "zod";
import { tail } from "./shell.ts";
import {
  asInfrastructureError,
  parseRow,
  type Environment,
  type EnvironmentFactory,
  type PromptMessages,
  type SetupResult,
  type SlotExec,
  type Verification,
} from "./types.ts";
import { InfrastructureError } from "../base/errors.ts";

export const shellTaskItemSchema = z
  .object({
    id: z.string().min(1),
    goal: z.string().min(1),
    /** Runs under bash in the workspace; exit 0 means solved. */
    check: z.string().min(1),
    /** Runs before the agent starts (e.g. creates input files); a failure is an infrastructure error. */
    setup: z.string().optional(),
    /** A known solution, for the oracle policy. */
    solution: z.string().optional(),
    /** The sandbox image the item runs in, as SWE datasets name it (the job's spec.environment.image default). */
    image_name: z.string().min(1).optional(),
  })
  .strict();

export type ShellTaskItem = z.output<typeof shellTaskItemSchema>;

export const shellTaskConfigSchema = z
  .object({
    setupTimeoutSeconds: z.number().positive().default(60),
    checkTimeoutSeconds: z.number().positive().default(60),
  })
  .strict();

export type ShellTaskConfig = z.output<typeof shellTaskConfigSchema>;

const OUTPUT_TAIL_CHARS = 2000;

export class ShellTaskEnvironment implements Environment<ShellTaskItem> {
  readonly name = "shell-task";
  readonly itemSchema = shellTaskItemSchema;
  readonly config: ShellTaskConfig;

  constructor(config: ShellTaskConfig) {
    this.config = config;
  }

  get longestStepSeconds(): number {
    return Math.max(this.config.setupTimeoutSeconds, this.config.checkTimeoutSeconds);
  }

  parseItem(row: unknown): ShellTaskItem {
    return parseRow(this.name, this.itemSchema, row);
  }

  itemId(item: ShellTaskItem): string {
    return item.id;
  }

  prompt(item: ShellTaskItem): PromptMessages {
    return {
      system: "You have a Linux shell (the `terminal` tool) in an empty working directory. Use non-interactive commands only.",
      user: `${item.goal.trim()}\n\nWhen you are done, say so briefly.`,
    };
  }

  async setup(item: ShellTaskItem, slot: SlotExec, signal?: AbortSignal): Promise<SetupResult> {
    signal?.throwIfAborted();
    if (!item.setup) return { workdir: ".", durationMs: 0 };
    const result = await slot.exec({ command: item.setup, timeoutMs: this.config.setupTimeoutSeconds * 1000 }).catch((error: unknown) => {
      throw asInfrastructureError("setup", error, `setup of ${item.id} failed`);
    });
    if (result.exitCode !== 0) {
      throw new InfrastructureError(
        "setup",
        `setup of ${item.id} failed: exit ${result.exitCode}: ${tail(result.stderr, OUTPUT_TAIL_CHARS)}`,
      );
    }
    return { workdir: ".", durationMs: result.durationMs };
  }

  async verify(item: ShellTaskItem, slot: SlotExec, signal?: AbortSignal): Promise<Verification> {
    signal?.throwIfAborted();
    const result = await slot.exec({ command: item.check, timeoutMs: this.config.checkTimeoutSeconds * 1000 }).catch((error: unknown) => {
      throw asInfrastructureError("verify", error, `check of ${item.id} failed to run`);
    });
    const passed = result.exitCode === 0;
    return {
      score: passed ? 1 : 0,
      passed,
      details: { exitCode: result.exitCode, timedOut: result.timedOut, output: tail(result.stdout + result.stderr, OUTPUT_TAIL_CHARS) },
      durationMs: result.durationMs,
    };
  }

  oracleCommands(item: ShellTaskItem): string[] | undefined {
    return item.solution === undefined ? undefined : [item.solution];
  }
}

export const shellTaskFactory: EnvironmentFactory<ShellTaskConfig, ShellTaskItem> = {
  name: "shell-task",
  configSchema: shellTaskConfigSchema,
  fromConfig: (config) => new ShellTaskEnvironment(config),
};
