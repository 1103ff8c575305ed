import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { backendEnvironment, datasetSettings, runEnvironment, type Environment } from "../../../src/cli/environment.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "../../..");

/**
 * The reads of process.env (and argv) outside src/cli that are not configuration, each with why. A line must
 * contain `match` to be let through; an entry that matches nothing any more fails too, so the list stays true.
 */
const allowed: { file: string; match: string; reason: string }[] = [
  {
    file: "src/backends/modal/backend.ts",
    match: "MODAL_SERVER_URL",
    reason: "a write, not a read: the Modal SDK takes its server only from MODAL_SERVER_URL, set and restored around one client's build",
  },
  {
    file: "src/envs/git-http.ts",
    match: "PATH: process.env.PATH",
    reason: "child env: git http-backend gets a minimal environment, with the PATH that finds git's helpers",
  },
  {
    file: "src/envs/swe-smith-oracle/mini.ts",
    match: "env: { ...process.env,",
    reason: "child env: git and pytest building the mini-dataset run as the user would run them, plus fixed settings",
  },
  {
    file: "src/testbeds/mock-modal/sandboxes.ts",
    match: "PATH: process.env.PATH",
    reason:
      "child env: a host mock sandbox's commands (and bwrap, for an image sandbox) run on this host and find their programs on its PATH",
  },
  {
    file: "src/testbeds/fake-nomad/scheduler.ts",
    match: "env: { ...process.env,",
    reason: "child env: a raw_exec task inherits the agent's environment, as under a real Nomad client",
  },
  {
    file: "src/api/generate-crds.ts",
    match: "process.argv[1] === fileURLToPath(import.meta.url)",
    reason: "the `npm run gen:crds` script's run-directly guard, not an argument read",
  },
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.(ts|js|mjs)$/.test(entry.name) && !entry.parentPath.split("/").includes("generated"))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

test("no file under src/ outside src/cli reads process.env or process.argv, except the allowed child-env and SDK cases", () => {
  const offending: string[] = [];
  const used = new Set<(typeof allowed)[number]>();
  for (const file of sourceFiles(join(root, "src")).filter((f) => !f.startsWith("src/cli/"))) {
    readFileSync(join(root, file), "utf8")
      .split("\n")
      .forEach((line, index) => {
        if (!/\bprocess\s*(\.\s*(env|argv)\b|\[)/.test(line)) return;
        const entry = allowed.find((a) => a.file === file && line.includes(a.match));
        if (entry) used.add(entry);
        else offending.push(`${file}:${index + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(offending, [], "read it in src/cli and pass it down as an option");
  assert.deepEqual(
    allowed.filter((a) => !used.has(a)).map((a) => `${a.file}: ${a.match}`),
    [],
    "allow-list entries that match nothing",
  );
});

test("dataset settings: the bundled dir under XDG_CACHE_HOME unless HERMES_MINI_DATASET_DIR names one; the Hub's URL and token", () => {
  assert.deepEqual(datasetSettings({ XDG_CACHE_HOME: "/cache", HF_ENDPOINT: "http://hub.test", HF_TOKEN: "hf_x" }), {
    bundledDir: "/cache/hermes-rollouts/swe-smith-mini",
    hfEndpoint: "http://hub.test",
    hfToken: "hf_x",
  });
  assert.deepEqual(datasetSettings({ HERMES_MINI_DATASET_DIR: "/data/mini", XDG_CACHE_HOME: "/cache" }), { bundledDir: "/data/mini" });
});

test("backend environment: only the NOMAD_* variables, and MODAL_MAX_THROTTLE_WAIT parsed with its 60 s default", () => {
  assert.deepEqual(backendEnvironment({ NOMAD_TOKEN: "t", NOMAD_ADDR: "http://n:4646", HOME: "/root", MODAL_MAX_THROTTLE_WAIT: "5" }), {
    nomad: { NOMAD_TOKEN: "t", NOMAD_ADDR: "http://n:4646" },
    modalMaxThrottleWaitSecs: 5,
  });
  assert.equal(backendEnvironment({}).modalMaxThrottleWaitSecs, 60);
  // Docker Nomad pools inject the server from this image when their spec names none (the controller passes its --image).
  assert.equal(backendEnvironment({ HERMES_IMAGE: "ghcr.io/x/hermes-rollouts:1" }).serverImage, "ghcr.io/x/hermes-rollouts:1");
  assert.equal(backendEnvironment({}).serverImage, undefined);
});

test("run environment: the model key (OPENAI_API_KEY before HERMES_MODEL_API_KEY) and the sandbox servers' token", () => {
  const env = { OPENAI_API_KEY: "sk-a", HERMES_MODEL_API_KEY: "sk-b", HERMES_SANDBOX_TOKEN: "tok", HERMES_MINI_DATASET_DIR: "/m" };
  const settings = runEnvironment(env);
  assert.equal(settings.modelApiKey, "sk-a");
  assert.equal(settings.pool?.sandboxToken, "tok");
  assert.equal(settings.datasets?.bundledDir, "/m");
  assert.equal(runEnvironment({ HERMES_MODEL_API_KEY: "sk-b" }).modelApiKey, "sk-b");
  assert.equal(runEnvironment({}).pool?.sandboxToken, undefined);
});

/** The variables a reader looks at, by running it on an environment that records them (NOMAD_* as a family). */
function variablesRead(read: (env: Environment) => unknown): string[] {
  const names = new Set<string>();
  read(
    new Proxy({} as Environment, {
      get: (_target, name) => (typeof name === "string" && names.add(name), undefined),
      ownKeys: () => (names.add("NOMAD_*"), []),
    }),
  );
  return [...names];
}

/** Variables a command file reads itself: `process.env.X`, commander's `.env("X")`, the runner's `required("X")`. */
function variablesInSource(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  return [...text.matchAll(/process\.env\.([A-Za-z_][A-Za-z0-9_]*)|\.env\(\s*"([A-Z0-9_]+)"|required\("([A-Z0-9_]+)"\)/g)].map(
    (m) => m[1] ?? m[2] ?? m[3] ?? "",
  );
}

test("every role's --help names each environment variable the role reads", async () => {
  const roles: Record<string, string[]> = {
    controller: [...variablesRead(datasetSettings), ...variablesRead(backendEnvironment)],
    run: variablesRead(runEnvironment),
    runner: [],
    "sandbox-server": [],
    "mock-modal": [],
    "fake-nomad": [],
    "model-server": [],
    inject: [],
  };
  for (const [role, fromReaders] of Object.entries(roles)) {
    const { stdout } = await run(process.execPath, [join(root, "bin/hermes-rollouts.js"), role, "--help"]);
    const names = new Set([...fromReaders, ...variablesInSource(`src/cli/commands/${role}.ts`), "LOG_LEVEL"]);
    for (const name of names) assert.ok(stdout.includes(name), `${role} --help does not mention ${name}`);
  }
});
