/**
 * `hermes-rollouts mock-modal`: a mock Modal control plane + command router for tests and kind CI, serving the gRPC
 * services defined in the pinned `modal@0.11.1` SDK (npm `modal`, github.com/modal-labs/libmodal: its bundled
 * ModalClient and TaskCommandRouter definitions, extracted by scripts/extract-modal-definitions.ts; behaviour as read
 * from the SDK in modal-sdk.md). Prints `MODAL_SERVER_URL=…` (and, with --tls-port,
 * `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=…`) on stdout once serving.
 */
import { join } from "node:path";
import { Command, Option } from "commander";
import { portNumber } from "../options.ts";
import { environmentHelp } from "../help.ts";
import { startMockModal } from "../../testbeds/mock-modal/server.ts";

export function command(): Command {
  return new Command("mock-modal")
    .addOption(new Option("--port <port>", "control-plane port (0 picks one)").env("MOCK_MODAL_PORT").default(0).argParser(portNumber))
    .addOption(new Option("--host <host>", "address to bind").env("MOCK_MODAL_HOST").default("127.0.0.1"))
    .addOption(new Option("--token-id <id>", "accept only this token id (default: any)").env("MOCK_MODAL_TOKEN_ID"))
    .addOption(new Option("--token-secret <secret>", "accept only this token secret (default: any)").env("MOCK_MODAL_TOKEN_SECRET"))
    .addOption(new Option("--data-dir <dir>", "where sandbox root directories live (default: a temp dir)").env("MOCK_MODAL_DATA_DIR"))
    .addOption(
      new Option("--tls-port <port>", "also serve over TLS here, the router for non-loopback clients")
        .env("MOCK_MODAL_TLS_PORT")
        .argParser(portNumber),
    )
    .addOption(
      new Option("--advertise-host <host>", "host non-loopback clients reach us at (router URL, certificate)").env(
        "MOCK_MODAL_ADVERTISE_HOST",
      ),
    )
    .addOption(
      new Option(
        "--tls-ca-dir <dir>",
        "sign the TLS certificate with the CA in <dir>/tls.crt and <dir>/tls.key (a mounted kubernetes.io/tls Secret)",
      ).env("MOCK_MODAL_TLS_CA_DIR"),
    )
    .addOption(
      new Option(
        "--images-dir <dir>",
        "serve fromRegistry(tag) from <dir>/<URI-encoded tag>: OCI layout, oci-archive or docker-archive (else: the host)",
      ).env("MOCK_MODAL_IMAGES_DIR"),
    )
    .addOption(
      new Option("--faults <spec>", 'fault injection, e.g. "unavailable=3@SandboxCreateV2,throttle=2x1.5,die-mid-exec=300"').env(
        "MOCK_MODAL_FAULTS",
      ),
    )
    .addHelpText("after", environmentHelp([]))
    .action(
      async (options: {
        port: number;
        host: string;
        tokenId?: string;
        tokenSecret?: string;
        dataDir?: string;
        tlsPort?: number;
        advertiseHost?: string;
        tlsCaDir?: string;
        imagesDir?: string;
        faults?: string;
      }) => {
        const mock = await startMockModal({
          port: options.port,
          host: options.host,
          ...(options.tokenId !== undefined ? { tokenId: options.tokenId } : {}),
          ...(options.tokenSecret !== undefined ? { tokenSecret: options.tokenSecret } : {}),
          ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
          ...(options.tlsPort !== undefined ? { tlsPort: options.tlsPort } : {}),
          ...(options.advertiseHost !== undefined ? { advertiseHost: options.advertiseHost } : {}),
          ...(options.tlsCaDir !== undefined
            ? { tlsCa: { certFile: join(options.tlsCaDir, "tls.crt"), keyFile: join(options.tlsCaDir, "tls.key") } }
            : {}),
          ...(options.imagesDir !== undefined ? { imagesDir: options.imagesDir } : {}),
          ...(options.faults !== undefined ? { faults: options.faults } : {}),
        });
        process.stdout.write(`MODAL_SERVER_URL=${mock.url}\n`);
        if (mock.caFile !== undefined)
          process.stdout.write(`GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=${mock.caFile}\nMOCK_MODAL_TLS_PORT=${mock.tlsPort}\n`);
        const stop = (): void => {
          void mock.close().finally(() => process.exit(0));
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      },
    );
}
