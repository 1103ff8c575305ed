/**
 * The one dependency direction of src/, layer by layer (README "Layout"). A module may import its own layer and
 * the layers listed as below it; anything else is an upward or sideways import and fails
 * test/unit/layout/layers.test.ts, which names the import. The three processes (operator, runner pod, local run) never
 * import one another; test beds are reached only from the CLI.
 */
export const layers = {
  base: [],
  api: ["base"],
  backends: ["base", "api"],
  envs: ["base", "api", "backends"],
  rollout: ["base", "api", "backends", "envs"],
  "model-server": ["base", "api", "rollout"],
  operator: ["base", "api", "backends", "envs", "rollout", "model-server"],
  runner: ["base", "api", "backends", "envs", "rollout", "model-server"],
  local: ["base", "api", "backends", "envs", "rollout", "model-server"],
  testbeds: ["base", "api", "backends"],
  cli: ["base", "api", "backends", "envs", "rollout", "model-server", "operator", "runner", "local", "testbeds"],
};

const names = Object.keys(layers);

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    ...names.map((layer) => ({
      name: `layer-${layer}`,
      comment: `src/${layer} may import only ${layers[layer].map((l) => `src/${l}`).join(", ") || "nothing else in src"}`,
      severity: "error",
      from: { path: `^src/${layer}/` },
      to: { path: `^src/(?!(?:${[layer, ...layers[layer]].join("|")})/)[^/]+/` },
    })),
    {
      name: "src-outside-layers",
      comment: `every source file sits in one of the layers: ${names.join(", ")}`,
      severity: "error",
      from: { path: `^src/(?!(?:${names.join("|")})/)` },
      to: {},
    },
    {
      name: "no-tests-from-src",
      comment: "shipped code never imports test helpers",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench)/" },
    },
    {
      name: "no-import-cycles",
      comment: "no import cycle between files of src",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
  ],
  options: {
    // swc parses TypeScript here (dependency-cruiser does not drive TypeScript 7's compiler).
    parser: "swc",
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)generated/" },
  },
};
