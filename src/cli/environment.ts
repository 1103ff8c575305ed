/**
 * The environment variables the roles read, each read here once into the typed settings the layers below take
 * (nothing under src/ outside the CLI reads process.env). help.ts names them in each role's `--help`.
 */
import type { BackendEnvironment } from "../backends/factory.ts";
import { maxThrottleWaitSecs } from "../backends/modal/plan.ts";
import type { DatasetSettings } from "../envs/datasets/index.ts";
import { defaultMiniDatasetDir } from "../envs/swe-smith-oracle/mini.ts";
import type { RunEnvironment } from "../local/job.ts";

export type Environment = Readonly<Record<string, string | undefined>>;

export function datasetSettings(env: Environment): DatasetSettings {
  return {
    bundledDir: env.HERMES_MINI_DATASET_DIR || defaultMiniDatasetDir(env.XDG_CACHE_HOME),
    ...(env.HF_ENDPOINT ? { hfEndpoint: env.HF_ENDPOINT } : {}),
    ...(env.HF_TOKEN ? { hfToken: env.HF_TOKEN } : {}),
  };
}

export function backendEnvironment(env: Environment): BackendEnvironment {
  return {
    nomad: Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith("NOMAD_"))),
    modalMaxThrottleWaitSecs: maxThrottleWaitSecs(env.MODAL_MAX_THROTTLE_WAIT),
    ...(env.HERMES_IMAGE ? { serverImage: env.HERMES_IMAGE } : {}),
  };
}

export function runEnvironment(env: Environment): RunEnvironment {
  const modelApiKey = env.OPENAI_API_KEY ?? env.HERMES_MODEL_API_KEY;
  return {
    ...(modelApiKey !== undefined ? { modelApiKey } : {}),
    datasets: datasetSettings(env),
    pool: { ...backendEnvironment(env), ...(env.HERMES_SANDBOX_TOKEN ? { sandboxToken: env.HERMES_SANDBOX_TOKEN } : {}) },
  };
}
