import { Command } from "commander";
import { environmentHelp } from "../help.ts";
import { APP_ROOT, injectServer } from "../../backends/sandbox-server/inject.ts";
import { logger } from "../../base/log.ts";

/**
 * `hermes-rollouts inject --to <dir>`: copies this node binary and this app to <dir>. A Nomad docker pool runs it
 * as a prestart task in the hermes-rollouts image, so that the pool's own image, which need have neither node nor
 * a shell, runs `<dir>/node <dir>/app/bin/hermes-rollouts.js sandbox-server ...`.
 */
export function command(): Command {
  return new Command("inject")
    .requiredOption("--to <dir>", "directory to copy node (<dir>/node) and the app (<dir>/app) into")
    .addHelpText("after", environmentHelp([]))
    .action(async (options: { to: string }) => {
      await injectServer(options.to, { execPath: process.execPath, appRoot: APP_ROOT });
      logger("inject").info({ to: options.to }, "copied node and the sandbox server");
    });
}
