/** The `Environment:` block of each role's `--help`: every variable the role reads, so none is a hidden setting. */

/** A variable (or a family of them) and what it sets; a description may run over several lines. */
export type VariableHelp = readonly [name: string, description: string];

export const DATASET_VARIABLES: readonly VariableHelp[] = [
  ["HERMES_MINI_DATASET_DIR", "where the bundled swe-smith-mini dataset is generated (default $XDG_CACHE_HOME/hermes-rollouts/…)"],
  ["XDG_CACHE_HOME", "the user's cache directory (default ~/.cache)"],
  ["HF_ENDPOINT", "Hugging Face Hub address for huggingFace datasets (default https://huggingface.co)"],
  ["HF_TOKEN", "Hugging Face bearer token, for gated and private datasets and model.tokenizer.huggingFace"],
];

export const BACKEND_VARIABLES: readonly VariableHelp[] = [
  [
    "NOMAD_*",
    "Nomad pools: NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT,\n" +
      "NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY, NOMAD_TLS_SERVER_NAME as the `nomad` CLI reads them, under the pool's\n" +
      "spec and Secrets",
  ],
  ["HERMES_IMAGE", "docker Nomad pools without spec.nomad.serverImage: the hermes-rollouts image that brings the server"],
  ["MODAL_MAX_THROTTLE_WAIT", "Modal pools: bound in seconds on throttling waits per call (default 60, 0: no retries)"],
  ["MODAL_TOKEN_ID, MODAL_TOKEN_SECRET", "Modal pools without credentials of their own (read by the Modal SDK, as is ~/.modal.toml)"],
];

const NAME_COLUMN = 25;

/** Every role reads LOG_LEVEL, so it closes every block. */
export function environmentHelp(variables: readonly VariableHelp[], options: { intro?: string; defaultLogLevel?: string } = {}): string {
  const logLevel: VariableHelp = [
    "LOG_LEVEL",
    `level of the JSON logs: trace, debug, info, warn, error or silent (default ${options.defaultLogLevel ?? "info"})`,
  ];
  const indent = `\n  ${" ".repeat(NAME_COLUMN)}`;
  const lines = [...variables, logLevel].map(([name, description]) => {
    const text = description.split("\n").join(indent);
    return name.length >= NAME_COLUMN ? `  ${name}${indent}${text}` : `  ${name.padEnd(NAME_COLUMN)}${text}`;
  });
  return `\n${options.intro ?? "Environment:"}\n${lines.join("\n")}`;
}
