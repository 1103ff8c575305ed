# Sourced: `up`, `status` and `env`, composed from the control-plane and node pieces.

COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy"

cluster_is_up() {
  local c
  [ -f "$CLUSTER_STATE/up" ] || return 1
  for c in $COMPONENTS; do alive "$(pid_of "$c")" || return 1; done
  admin_curl /readyz >/dev/null 2>&1
}

any_component_alive() {
  local c
  for c in $COMPONENTS; do alive "$(pid_of "$c")" && return 0; done
  return 1
}

up() {
  if cluster_is_up; then
    log "already up"
    import_images
    echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
    return 0
  fi
  if any_component_alive || [ -f "$CLUSTER_STATE/etcd.datadir" ]; then
    log "found a partial cluster: tearing it down first"
    down
  fi
  [ "$(id -u)" = 0 ] || die "the node (containerd, kubelet, kube-proxy) needs root"
  deps
  tools
  build
  local t0 node_ip; t0=$(date +%s.%N)
  trap 'on_up_failure' ERR
  mkdir -p "$CLUSTER_STATE/pids" "$CLUSTER_STATE/logs"
  node_ip=$(detect_node_ip)
  pki "$node_ip"
  start_etcd
  start_apiserver "$node_ip"
  log "apiserver ready after $(elapsed_since "$t0") s"
  start_controllers
  prepare_host_network
  start_containerd
  import_images
  start_kubelet "$node_ip"
  start_kube_proxy "$node_ip"
  wait_for 60 "the default ServiceAccount token" default_token_ready
  log "controllers ready after $(elapsed_since "$t0") s"
  wait_for 120 "node $NODE_NAME Ready" node_ready
  wait_for 30 "kube-proxy healthz" curl -sf http://127.0.0.1:10256/healthz
  trap - ERR
  touch "$CLUSTER_STATE/up"
  log "cluster up in $(elapsed_since "$t0") s (node $NODE_NAME at $node_ip); logs in $CLUSTER_STATE/logs"
  echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
}

on_up_failure() {
  local c
  log "up failed; last log lines of each component (run '$0 down' to clean up):"
  for c in $COMPONENTS; do
    [ -f "$CLUSTER_STATE/logs/$c.log" ] && { echo "--- $c" >&2; tail -5 "$CLUSTER_STATE/logs/$c.log" >&2; }
  done
}

status() {
  local c pid state rc=0
  for c in $COMPONENTS; do
    pid=$(pid_of "$c")
    if alive "$pid"; then
      state="running pid $pid, rss $(awk '/^VmRSS/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status")"
    else
      state="stopped"; rc=1
    fi
    printf '%-24s %s\n' "$c" "$state"
  done
  if [ "$rc" = 0 ] && node_ready; then echo "node $NODE_NAME Ready"; else echo "node $NODE_NAME not ready"; rc=1; fi
  return "$rc"
}

# Export lines for `eval "$(cluster.sh env)"`; tests read these variables (test/support/cluster.ts).
print_env() {
  cat <<ENV
export KUBECONFIG=$ADMIN_KUBECONFIG
export HERMES_OPERATOR_KUBECONFIG=$OPERATOR_KUBECONFIG
export HERMES_CLUSTER_STATE=$CLUSTER_STATE
export HERMES_CONTAINERD_SOCK=$CONTAINERD_SOCK
export HERMES_IMAGE_IMPORT_DIR=$IMAGE_IMPORT_DIR
export HERMES_KUBECTL=$TOOLS_BIN/kubectl
export HERMES_HELM=$TOOLS_BIN/helm
export HERMES_NODE_NAME=$NODE_NAME
export PATH="$TOOLS_BIN:\$PATH"
ENV
}
