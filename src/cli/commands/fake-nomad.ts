import { Command } from "commander";
import { nonNegativeInteger, portNumber } from "../options.ts";
import { environmentHelp } from "../help.ts";
import { startFakeNomad } from "../../testbeds/fake-nomad/server.ts";

/**
 * `hermes-rollouts fake-nomad`: the fake Nomad HTTP API (src/testbeds/fake-nomad, written from hashicorp/nomad's
 * source; docs/nomad-fake.md), running sandbox servers as local processes.
 */
export function command(): Command {
  return new Command("fake-nomad")
    .option("--port <port>", "port to listen on (0 picks one)", portNumber, 4646)
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--data-dir <dir>", "where allocation directories live (a temporary directory when unset)")
    .option("--acl-token <token>", "require this ACL token (X-Nomad-Token or Bearer), as with ACLs enabled")
    .option("--namespace <name...>", "namespaces besides default")
    .option("--placement-delay-ms <ms>", "delay of an evaluation: a register's placement, a deregister's stop", nonNegativeInteger, 20)
    .option("--max-reschedule-delay-ms <ms>", "cap on restart and reschedule delays", nonNegativeInteger, 200)
    .option("--lose-alloc-every-ms <ms>", "fault: lose a random running allocation every N ms", nonNegativeInteger)
    .option("--crash-task-every-ms <ms>", "fault: crash a random running task every N ms", nonNegativeInteger)
    .addHelpText("after", environmentHelp([]))
    .action(
      async (options: {
        port: number;
        host: string;
        dataDir?: string;
        aclToken?: string;
        namespace?: string[];
        placementDelayMs: number;
        maxRescheduleDelayMs: number;
        loseAllocEveryMs?: number;
        crashTaskEveryMs?: number;
      }) => {
        const fake = await startFakeNomad({
          port: options.port,
          host: options.host,
          placementDelayMs: options.placementDelayMs,
          maxRescheduleDelayMs: options.maxRescheduleDelayMs,
          ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
          ...(options.aclToken === undefined ? {} : { aclToken: options.aclToken }),
          ...(options.namespace === undefined ? {} : { namespaces: options.namespace }),
          ...(options.loseAllocEveryMs === undefined ? {} : { loseEveryMs: options.loseAllocEveryMs }),
          ...(options.crashTaskEveryMs === undefined ? {} : { crashEveryMs: options.crashTaskEveryMs }),
        });
        process.stdout.write(`fake Nomad on ${fake.url}\n`);
        const stop = (): void => void fake.close().then(() => process.exit(0));
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      },
    );
}
