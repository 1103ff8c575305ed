import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ClientError, Status } from "nice-grpc";
import { ModalClient } from "modal";
import { ModalBackend } from "../../../src/backends/modal/backend.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { imageEntryName } from "../../../src/testbeds/mock-modal/images.ts";
import { withModalServerUrl } from "../../support/modal.ts";
import { buildTestImage } from "../../support/oci-images.ts";

const repo = fileURLToPath(new URL("../../../", import.meta.url));
const runFile = promisify(execFile);

/** Starts `hermes-rollouts mock-modal` as its own process and reads the `KEY=value` lines it prints. */
async function startCli(args: string[]): Promise<{ child: ChildProcess; printed: Record<string, string> }> {
  const child = spawn(process.execPath, ["bin/hermes-rollouts.js", "mock-modal", "--port", "0", ...args], {
    cwd: repo,
    env: { ...process.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const printed: Record<string, string> = {};
  const lines = createInterface({ input: child.stdout! });
  const expected = args.includes("--tls-port") ? 3 : 1;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("mock-modal printed nothing within 20 s")), 20_000);
    child.once("exit", (code) => reject(new Error(`mock-modal exited with ${code}`)));
    lines.on("line", (line) => {
      const match = /^([A-Z_]+)=(.*)$/.exec(line);
      if (match?.[1] !== undefined && match[2] !== undefined) printed[match[1]] = match[2];
      if (Object.keys(printed).length === expected) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { child, printed };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

const children: ChildProcess[] = [];
after(async () => {
  for (const child of children) await stop(child);
});

describe("hermes-rollouts mock-modal (the shipped CLI role, as a separate process)", () => {
  test("serves on 127.0.0.1 and accepts any token id/secret by default", async () => {
    const { child, printed } = await startCli([]);
    children.push(child);
    assert.match(printed.MODAL_SERVER_URL ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    const url = printed.MODAL_SERVER_URL ?? "";
    const modal = await withModalServerUrl(
      url,
      () => new ModalClient({ tokenId: "ak-anything", tokenSecret: "as-whatever", logLevel: "error" }),
    );
    const app = await modal.apps.fromName("cli-any", { createIfMissing: true });
    const sandbox = await modal.sandboxes.create(app, modal.images.fromRegistry("debian:12-slim"), { timeoutMs: 60_000 });
    const proc = await sandbox.exec(["echo", "from the cli mock"]);
    assert.equal(await proc.wait(), 0);
    assert.equal(await proc.stdout.readText(), "from the cli mock\n");
    await sandbox.terminate();
    modal.close();
  });

  test("with --images-dir, a sandbox of an image found there runs in that image's filesystem", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "mock-modal-cli-images-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await buildTestImage(join(dir, "images", imageEntryName("localhost/cli:1")), "cli", { files: { "/etc/which": "cli image\n" } });
    const { child, printed } = await startCli(["--images-dir", join(dir, "images"), "--data-dir", join(dir, "data")]);
    children.push(child);
    const modal = await withModalServerUrl(
      printed.MODAL_SERVER_URL ?? "",
      () => new ModalClient({ tokenId: "a", tokenSecret: "b", logLevel: "error" }),
    );
    const app = await modal.apps.fromName("cli-images", { createIfMissing: true });
    const sandbox = await modal.sandboxes.create(app, modal.images.fromRegistry("localhost/cli:1"), { timeoutMs: 60_000 });
    const proc = await sandbox.exec(["cat", "/etc/which"]);
    assert.equal(await proc.wait(), 0);
    assert.equal(await proc.stdout.readText(), "cli image\n");
    await sandbox.terminate();
    modal.close();
  });

  test("with --token-id/--token-secret, wrong credentials fail UNAUTHENTICATED and the backend calls it configuration", async () => {
    const { child, printed } = await startCli(["--token-id", "ak-right", "--token-secret", "as-right"]);
    children.push(child);
    const url = printed.MODAL_SERVER_URL ?? "";
    const client = (tokenSecret: string) =>
      withModalServerUrl(url, () => new ModalClient({ tokenId: "ak-right", tokenSecret, logLevel: "error" }));
    const wrong = await client("as-wrong");
    await assert.rejects(
      wrong.apps.fromName("cli-auth", { createIfMissing: true }),
      (error: unknown) => error instanceof ClientError && error.code === Status.UNAUTHENTICATED,
    );
    const backend = new ModalBackend({ appName: "cli-auth", serverUrl: url, tokenId: "ak-wrong", tokenSecret: "as-right" });
    const template = {
      pool: "auth",
      image: "debian:12-slim",
      slots: 1,
      cpu: 1,
      memoryMiB: 256,
      lifetimeSeconds: 60,
      idleTimeoutSeconds: 0,
      templateHash: "h",
    };
    await assert.rejects(backend.create("auth-0", template), (error: unknown) => isSandboxError(error, "configuration"));
    const right = await client("as-right");
    assert.match((await right.apps.fromName("cli-auth", { createIfMissing: true })).appId, /^ap-/);
    right.close();
    wrong.close();
    await backend.close();
  });

  test("a non-loopback client gets the command router over TLS (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)", async (t) => {
    const address = Object.values(networkInterfaces())
      .flat()
      .find((entry) => entry && entry.family === "IPv4" && !entry.internal)?.address;
    if (address === undefined) {
      t.skip("no non-loopback IPv4 address on this machine");
      return;
    }
    const { child, printed } = await startCli(["--host", "0.0.0.0", "--tls-port", "0", "--advertise-host", address]);
    children.push(child);
    const port = new URL(printed.MODAL_SERVER_URL ?? "").port;
    // A fresh process: grpc-js reads the roots file once, and this client must dial as a remote one would.
    const script = `
      const { ModalClient } = await import("modal");
      const modal = new ModalClient({ tokenId: "ak", tokenSecret: "as", logLevel: "error" });
      const app = await modal.apps.fromName("cli-tls", { createIfMissing: true });
      const sandbox = await modal.sandboxes.create(app, modal.images.fromRegistry("debian:12-slim"), { timeoutMs: 60000 });
      const proc = await sandbox.exec(["echo", "over tls"]);
      console.log(await proc.wait(), (await proc.stdout.readText()).trim());
      await sandbox.terminate();`;
    const { stdout } = await runFile(process.execPath, ["--input-type=module", "-e", script], {
      cwd: repo,
      timeout: 30_000,
      env: {
        ...process.env,
        MODAL_SERVER_URL: `http://${address}:${port}`,
        GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: printed.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH ?? "",
      },
    });
    assert.equal(stdout.trim(), "0 over tls");
  });
});
