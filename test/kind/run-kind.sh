#!/usr/bin/env bash
# The e2e on a kind cluster, for hosts with Docker, kind, kubectl and helm 4 (users' CI; .github/workflows/kind-e2e.yaml):
# creates a cluster from kind-config.yaml, builds the image from the repository's Dockerfile, loads it into the
# cluster, runs the shared test/kind/e2e-steps.sh, and deletes the cluster whatever happens.
#
# env: KIND_CLUSTER_NAME (hermes-e2e), HERMES_IMAGE (hermes-rollouts:e2e), HERMES_E2E_ARTIFACTS (kind logs on
#      failure go there too), KEEP_CLUSTER=1 keeps the cluster for debugging. Extra `docker build` arguments (e.g.
#      --build-arg BASE=...) may follow on the command line.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${KIND_CLUSTER_NAME:-hermes-e2e}"
IMAGE="${HERMES_IMAGE:-hermes-rollouts:e2e}"
export HERMES_E2E_ARTIFACTS="${HERMES_E2E_ARTIFACTS:-$(mktemp -d -t hermes-e2e-XXXXXX)}"
T0=$(date +%s)
log() { echo "[kind +$(($(date +%s) - T0))s] $*"; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "run-kind.sh needs $tool on PATH" >&2; exit 2; }
done
helm version --short | grep -q '^v4\.' || { echo "run-kind.sh needs helm 4 (found $(helm version --short))" >&2; exit 2; }

finish() {
  local status=$?
  if ((status != 0)); then kind export logs "$HERMES_E2E_ARTIFACTS/kind-logs" --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  log "$( ((status == 0)) && echo PASSED || echo "FAILED (exit $status), artifacts in $HERMES_E2E_ARTIFACTS")"
  exit "$status"
}
trap finish EXIT

log "kind create cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --config "$REPO/test/kind/kind-config.yaml" --kubeconfig "$HERMES_E2E_ARTIFACTS/kubeconfig" --wait 120s
export KUBECONFIG="$HERMES_E2E_ARTIFACTS/kubeconfig"

log "docker build $IMAGE"
build_start=$(date +%s)
docker build -t "$IMAGE" -f "$REPO/Dockerfile" "$@" "$REPO"
log "image built in $(($(date +%s) - build_start)) s"
kind load docker-image "$IMAGE" --name "$CLUSTER"

# The cluster is ours alone: cluster-wide RBAC, and the CRDs go at the end.
HERMES_E2E_RBAC_SCOPE=cluster HERMES_E2E_DELETE_CRDS=1 bash "$REPO/test/kind/e2e-steps.sh" "$IMAGE" Never
