import { Command, InvalidArgumentError, Option } from "commander";
import { nonNegativeInteger, portNumber } from "../options.ts";
import { join } from "node:path";
import { logger } from "../../base/log.ts";
import { environmentHelp } from "../help.ts";
import { probeIsolation, type IsolationRequest } from "../../backends/isolation.ts";
import { SlotHost } from "../../backends/local/slot-host.ts";
import { createSandboxServer } from "../../backends/sandbox-server/server.ts";

const log = logger("sandbox-server");

interface Options {
  port?: number;
  host: string;
  slots: number;
  dataDir: string;
  token?: string;
  insecure: boolean;
  isolation: IsolationRequest;
}

/**
 * `hermes-rollouts sandbox-server`: the process each Nomad allocation and kubernetes sandbox pod runs. Under Nomad the data dir is
 * `$NOMAD_ALLOC_DIR/data` and the port defaults to `$NOMAD_PORT_http`. The token may also come from
 * `HERMES_SANDBOX_TOKEN`, which keeps it out of the process list. It is required: slots share the host's network,
 * so an open server lets any slot drive every other one.
 */
export function command(): Command {
  return new Command("sandbox-server")
    .option("--port <port>", "port to listen on (default $NOMAD_PORT_http, else 8080)", portNumber)
    .option("--host <host>", "address to bind (Nomad jobs pass the allocation's address)", "127.0.0.1")
    .option("--slots <m>", "number of slots", nonNegativeInteger, 10)
    .option("--data-dir <dir>", "where slots/<n> and cache live (ignored when NOMAD_ALLOC_DIR is set)", "/data")
    .option("--token <token>", "shared bearer token (default $HERMES_SANDBOX_TOKEN); without one the server refuses to start")
    .option("--insecure", "serve without a token: any process that reaches the port, any slot included, drives every slot", false)
    .addOption(
      new Option("--isolation <mode>", "bwrap isolates slots; auto falls back to none when bwrap cannot run")
        .choices(["auto", "bwrap", "none"])
        .default("auto"),
    )
    .addHelpText(
      "after",
      environmentHelp(
        [
          ["NOMAD_ALLOC_DIR", "the allocation directory: slots live in $NOMAD_ALLOC_DIR/data, --data-dir is ignored"],
          ["NOMAD_PORT_http", "the port Nomad gave the allocation, when --port is not given"],
          ["HERMES_SANDBOX_TOKEN", "the shared bearer token when --token is not given (kept out of the process list)"],
        ],
        { intro: "Environment (Nomad sets the NOMAD_* ones in each allocation):" },
      ),
    )
    .action(async (options: Options) => {
      const dataDir = process.env.NOMAD_ALLOC_DIR ? join(process.env.NOMAD_ALLOC_DIR, "data") : options.dataDir;
      const port = options.port ?? (process.env.NOMAD_PORT_http ? portNumber(process.env.NOMAD_PORT_http) : 8080);
      const token = options.token ?? (process.env.HERMES_SANDBOX_TOKEN || undefined);
      if (options.slots < 1) throw new InvalidArgumentError("--slots must be at least 1");
      const probe = await probeIsolation(options.isolation);
      if (probe.isolation === "none") log.warn({ reason: probe.message }, "slot isolation is off");
      const host = new SlotHost({ root: dataDir, slots: options.slots, isolation: probe.isolation, slotUser: probe.slotUser });
      // Refuses before preparing anything when there is no token and no --insecure.
      const server = createSandboxServer({ host, token, insecure: options.insecure, isolationMessage: probe.message });
      if (token === undefined) log.warn("serving without a token (--insecure): every slot on this host can drive every other slot");
      await host.prepare();
      server.listen(port, options.host, () => {
        const address = server.address();
        const bound = typeof address === "object" && address !== null ? address.port : port;
        log.info(
          { host: options.host, port: bound, slots: options.slots, dataDir, isolation: probe.isolation, auth: token !== undefined },
          "sandbox server listening",
        );
      });
      const stop = (): void => {
        host.killAll();
        server.close(() => process.exit(0));
        server.closeAllConnections();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
}
