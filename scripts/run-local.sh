#!/usr/bin/env bash
# Runs the main job on the embedded default: local sandboxes, the built-in model endpoint and the bundled
# offline mini-dataset; no cluster, no cloud account. Extra arguments go to `hermes-rollouts run`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/node.sh
ensure_node
ensure_npm_deps "$PWD"
bash scripts/setup-host.sh
exec node bin/hermes-rollouts.js run examples/rolloutjob-local.yaml --out "${OUT_DIR:-out/local}" "$@"
