#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (Node 24, npm packages, Debian packages, the
# local Kubernetes cluster and the project image), runs the unit and integration suites in one node:test run (one
# file at a time: the integration files share one cluster, and a cluster-wide controller must not meet another), and
# stops the cluster whatever happens. `.ci/run` calls exactly this; `npm test` is the same command.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source scripts/lib/node.sh
started=$(date +%s)
phase() { echo "[test] $1 (+$(( $(date +%s) - started ))s)" >&2; }

phase "setup: node, npm packages, host packages"
ensure_node
ensure_npm_deps "$ROOT"
bash scripts/setup-host.sh

phase "typecheck"
npx tsc -p tsconfig.json

phase "cluster up"
trap 'phase "cluster down"; bash scripts/cluster/cluster.sh down || true' EXIT
bash scripts/cluster/cluster.sh up
eval "$(bash scripts/cluster/cluster.sh env)"

phase "project image"
bash scripts/image/build.sh

phase "tests"
node --test --test-concurrency="${TEST_CONCURRENCY:-1}" --test-timeout=600000 --test-reporter=spec \
  'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts'
phase "done"
