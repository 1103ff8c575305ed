import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { createInterface } from "node:readline";
import { rm } from "node:fs/promises";
import { z } from "zod";
import { nonNegativeInteger, portNumber } from "../options.ts";
import { join } from "node:path";
import { errorMessage } from "../../base/errors.ts";
import { logger } from "../../base/log.ts";
import { environmentHelp } from "../help.ts";
import { probeIsolation } from "../../backends/isolation.ts";
import { probeHostTools } from "../../backends/image-view.ts";
import type { IsolationMode, NetworkPolicy } from "../../backends/types.ts";
import { SlotHost } from "../../backends/local/slot-host.ts";
import { createSandboxServer } from "../../backends/sandbox-server/server.ts";

const log = logger("sandbox-server");

interface Options {
  port?: number;
  host: string;
  slots: number;
  dataDir: string;
  token?: string;
  tokenFile?: string;
  insecure: boolean;
  isolation: IsolationMode;
  network: NetworkPolicy;
  slotMemory?: number;
  slotPids?: number;
  slotCpu?: number;
  slotWorkspace?: number;
  socket?: string;
  parentStdin: boolean;
  slotEnv?: string[];
}

/** What a parent process (the local backend) sends on stdin as one JSON line, kept out of argv and the environment. */
const parentSettingsSchema = z.object({
  token: z.string().min(1),
  slotEnv: z.record(z.string(), z.string()).optional(),
  /** An OCI image's unpacked rootfs that slots see as `/` (image-view.ts), with the image's Env. */
  image: z.object({ root: z.string().min(1), env: z.record(z.string(), z.string()) }).optional(),
  /** Where each slot's workspace is mounted under bwrap (default /workspace). */
  workdir: z.string().min(1).optional(),
});

/**
 * `hermes-rollouts sandbox-server`: the process each Nomad allocation and Kubernetes sandbox pod runs. Under Nomad
 * the data dir is `$NOMAD_ALLOC_DIR/data` and the port defaults to `$NOMAD_PORT_http`. The token may also come from a
 * file (Nomad jobs render it there from a Nomad Variable) or `HERMES_SANDBOX_TOKEN`, both out of the process list. It
 * is required: slots share the host's network, so an open server lets any slot drive every other one.
 */
export function command(): Command {
  return new Command("sandbox-server")
    .option("--port <port>", "port to listen on (default $NOMAD_PORT_http, else 8080)", portNumber)
    .option("--host <host>", "address to bind (Nomad jobs pass the allocation's address)", "127.0.0.1")
    .option("--slots <m>", "number of slots", nonNegativeInteger, 10)
    .option("--data-dir <dir>", "where slots/<n> and cache live (ignored when NOMAD_ALLOC_DIR is set)", "/data")
    .option("--token <token>", "shared bearer token (default $HERMES_SANDBOX_TOKEN); without one the server refuses to start")
    .option("--socket <path>", "listen on this unix socket instead of a TCP port (the local backend's sandboxes)")
    .option(
      "--parent-stdin",
      "started by a parent process: read {token, slotEnv, image, workdir} as one JSON line on stdin, and exit when stdin closes",
      false,
    )
    .option(
      "--slot-env <names>",
      "comma-separated names of this process's environment variables that slot commands get (a pool's env under Nomad and kubernetes)",
      envNames,
    )
    .option("--token-file <path>", "read the shared bearer token from this file (Nomad jobs: the task's secrets dir)")
    .option("--insecure", "serve without a token: any process that reaches the port, any slot included, drives every slot", false)
    .addOption(
      new Option("--isolation <mode>", "bwrap isolates slots (the server refuses to start where bwrap cannot run); none does not")
        .choices(["bwrap", "none"])
        .default("bwrap"),
    )
    .addOption(
      new Option(
        "--network <policy>",
        "slot commands' network under bwrap: none (a namespace of their own), egress (out through slirp4netns, " +
          "not to the host's loopback) or host",
      )
        .choices(["none", "egress", "host"])
        .default("none"),
    )
    .option("--slot-memory <bytes>", "memory limit of each slot's cgroup, where one can be made", nonNegativeInteger)
    .option("--slot-pids <n>", "process limit of each slot's cgroup", nonNegativeInteger)
    .option("--slot-cpu <millicores>", "CPU limit of each slot's cgroup, in thousandths of a core", nonNegativeInteger)
    .option(
      "--slot-workspace <bytes>",
      "size of each slot's workspace, a loop-mounted image (needs root and a loop device)",
      nonNegativeInteger,
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
      const parent = options.parentStdin ? await readParentSettings() : undefined;
      const token = parent?.token ?? options.token ?? readTokenFile(options.tokenFile) ?? (process.env.HERMES_SANDBOX_TOKEN || undefined);
      if (options.slots < 1) throw new InvalidArgumentError("--slots must be at least 1");
      const probe = await probeIsolation(options.isolation, options.network);
      if (probe.isolation === "none") log.warn({ reason: probe.message }, "slot isolation is off");
      const slotEnv = { ...pickEnv(options.slotEnv), ...parent?.slotEnv };
      const image = parent?.image;
      // The helpers slots start under (prlimit, setpriv) come from the host when slots run in an image's root.
      const hostTools = image !== undefined && probe.slotUser !== "spawner" ? probeHostTools() : undefined;
      const host = new SlotHost({
        root: dataDir,
        slots: options.slots,
        isolation: probe.isolation,
        slotUser: probe.slotUser,
        ...(Object.keys(slotEnv).length === 0 ? {} : { env: slotEnv }),
        network: options.network,
        ...(image === undefined ? {} : { image: { ...image, hostTools } }),
        workdir: parent?.workdir,
        limits: {
          memoryBytes: options.slotMemory,
          pids: options.slotPids,
          cpuMillis: options.slotCpu,
          workspaceBytes: options.slotWorkspace,
        },
      });
      // Refuses before preparing anything when there is no token and no --insecure.
      const server = createSandboxServer({
        host,
        token,
        insecure: options.insecure,
        isolationMessage: () => [probe.message, probe.limits, host.limitsDescription()].filter((part) => part !== undefined).join("; "),
      });
      if (token === undefined) log.warn("serving without a token (--insecure): every slot on this host can drive every other slot");
      await host.prepare();
      log.info({ limits: host.limitsDescription() }, "slot limits");
      const stop = (): void => {
        void host
          .close()
          .catch((error: unknown) => log.error({ err: error }, "could not remove the slots' cgroups or workspace mounts"))
          .finally(() => server.close(() => process.exit(0)));
        server.closeAllConnections();
      };
      const listening = (): void => {
        const address = server.address();
        const bound = typeof address === "object" && address !== null ? address.port : address;
        const where = options.socket === undefined ? { host: options.host, port: bound } : { socket: options.socket };
        log.info(
          { ...where, slots: options.slots, dataDir, isolation: probe.isolation, auth: token !== undefined },
          "sandbox server listening",
        );
      };
      if (options.socket !== undefined) {
        await rm(options.socket, { force: true }); // left by a server of an earlier run
        server.listen(options.socket, listening);
      } else server.listen(port, options.host, listening);
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      // The parent's end of stdin closes when the parent dies: its sandboxes must not outlive it. A parent that died
      // while this server prepared its slots (mounts, cgroups: seconds under load) closed it before anyone listened.
      if (parent !== undefined) {
        if (process.stdin.destroyed) stop();
        else process.stdin.once("close", stop);
      }
    });
}

async function readParentSettings(): Promise<z.infer<typeof parentSettingsSchema>> {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    const parsed = parentSettingsSchema.safeParse(JSON.parse(line));
    if (!parsed.success)
      throw new InvalidArgumentError(`--parent-stdin: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    process.stdin.resume(); // keep reading, so the end of stdin is seen
    return parsed.data;
  }
  throw new InvalidArgumentError("--parent-stdin: stdin closed before the settings line");
}

function envNames(value: string): string[] {
  const names = value.split(",").filter((name) => name !== "");
  const invalid = names.find((name) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name));
  if (invalid !== undefined) throw new InvalidArgumentError(`--slot-env: ${JSON.stringify(invalid)} is not an environment variable name`);
  return names;
}

/** The named variables of this process's environment; a name the process lacks is an error, not an empty value. */
function pickEnv(names: readonly string[] | undefined): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names ?? []) {
    const value = process.env[name];
    if (value === undefined) throw new InvalidArgumentError(`--slot-env: ${name} is not set in the server's environment`);
    picked[name] = value;
  }
  return picked;
}

/** The file's text without its final line break; an empty file is an error, not "no token". */
function readTokenFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidArgumentError(`--token-file ${path}: ${errorMessage(error)}`);
  }
  const token = text.replace(/\r?\n$/, "");
  if (token === "") throw new InvalidArgumentError(`--token-file ${path} is empty`);
  return token;
}
