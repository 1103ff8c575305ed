# Sourced: `down`. Order matters (pods first so CNI DEL runs, then node, then control plane), and every step
# also works on what a partial `up` left behind. Removes only what this cluster made: our pids, our mounts under
# $CLUSTER_STATE, netns holding our pod addresses, our bridge, KUBE-* chains and CNI chains of our network,
# and the kubepods cgroups. Keeps the containerd image store (a cache) and logs.

down() {
  local t0; t0=$(date +%s.%N)
  rm -f "$CLUSTER_STATE/up"
  drain_pods
  stop_components kube-proxy kubelet
  remove_containers
  stop_components containerd
  kill_our_shims
  kill_kubepods_processes
  stop_components kube-scheduler kube-controller-manager kube-apiserver etcd
  unmount_state
  remove_pod_netns
  ip link del "$CNI_BRIDGE" 2>/dev/null || true
  remove_our_iptables iptables
  remove_our_iptables ip6tables
  remove_kubepods_cgroups
  [ -f "$CLUSTER_STATE/etcd.datadir" ] && rm -rf "$(cat "$CLUSTER_STATE/etcd.datadir")" "$CLUSTER_STATE/etcd.datadir"
  rm -rf "$CLUSTER_STATE/pids" "$CLUSTER_STATE/pki" "$CLUSTER_STATE"/*.kubeconfig "$NODE_DIR" \
    "$CONTAINERD_DIR/state" "$CONTAINERD_DIR/runc" /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
  log "down in $(elapsed_since "$t0") s"
}

# Force-delete every pod (cordoned first, so controllers' replacements stay Pending) and let the kubelet stop
# the sandboxes, which runs CNI DEL: veths, IPAM entries and per-pod iptables rules go the normal way.
drain_pods() {
  alive "$(pid_of kube-apiserver)" && alive "$(pid_of kubelet)" || return 0
  local kubectl="$TOOLS_BIN/kubectl --kubeconfig=$ADMIN_KUBECONFIG --request-timeout=5s"
  $kubectl cordon "$NODE_NAME" >/dev/null 2>&1 || true
  $kubectl delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
  wait_for 20 "pod sandboxes to stop" no_running_tasks || true
}

no_running_tasks() { [ -z "$(ctr_k8s tasks ls -q 2>/dev/null)" ]; }

# stop_components <name...>: SIGTERM together, SIGKILL whatever is left after 5 s.
stop_components() {
  local name pid pids="" i
  for name in "$@"; do
    pid=$(pid_of "$name")
    alive "$pid" && kill "$pid" 2>/dev/null && pids="$pids $pid"
    rm -f "$CLUSTER_STATE/pids/$name"
  done
  for ((i = 0; i < 50; i++)); do
    for pid in $pids; do alive "$pid" && break; pid=""; done
    [ -z "$pid" ] && return 0
    sleep 0.1
  done
  for pid in $pids; do alive "$pid" && kill -9 "$pid" 2>/dev/null; done
  return 0
}

# Tasks and containers still known to containerd (e.g. the kubelet died mid-run); netns paths are noted first.
remove_containers() {
  containerd_ready >/dev/null 2>&1 || return 0
  local id
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do
    ctr_k8s containers info "$id" 2>/dev/null | grep -o '/var/run/netns/cni-[0-9a-f-]*' >> "$CLUSTER_STATE/netns.list" || true
  done
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers delete "$id" >/dev/null 2>&1 || true; done
}

# containerd-shim-runc-v2 processes outlive containerd; ours carry our socket path on their command line.
kill_our_shims() {
  local pid
  for pid in $(grep -lsF -- "$CONTAINERD_SOCK" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    grep -qsF containerd-shim "/proc/$pid/cmdline" && kill -9 "$pid" 2>/dev/null || true
  done
}

kubepods_cgroups() { find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -depth -type d 2>/dev/null || true; }

kill_kubepods_processes() {
  local dir
  for dir in $(kubepods_cgroups); do xargs -r kill -9 < "$dir/cgroup.procs" 2>/dev/null || true; done
}

remove_kubepods_cgroups() {
  local dir
  for dir in $(kubepods_cgroups); do rmdir "$dir" 2>/dev/null || true; done
}

# Kubelet bind-mounts its root dir onto itself, plus pod volumes; containerd mounts rootfs and shm: deepest first.
unmount_state() {
  local target
  for target in $(findmnt -rn -o TARGET | grep -F "$CLUSTER_STATE/" | sort -r); do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done
}

# Ours: noted from containerd's containers, or holding an address of our pod subnet.
remove_pod_netns() {
  local ns prefix="${POD_CIDR%.*.*}."
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    if grep -qxF "$ns" "$CLUSTER_STATE/netns.list" 2>/dev/null \
      || ip -n "$(basename "$ns")" -4 -o addr 2>/dev/null | grep -qF " $prefix"; then
      umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
      rm -f "$ns"
    fi
  done
  rm -f "$CLUSTER_STATE/netns.list"
}

# remove_our_iptables iptables|ip6tables: drops KUBE-* chains (kubelet, kube-proxy) and the CNI chains whose
# rules carry our network's name, with every jump to them; other rules are written back untouched.
remove_our_iptables() {
  local cmd="$1" table dump chains
  command -v "$cmd-save" >/dev/null || return 0
  for table in nat filter mangle; do
    dump=$("$cmd-save" -t "$table" 2>/dev/null) || continue
    chains=$( { grep -oE '^:KUBE-[A-Z0-9-]+' <<< "$dump" | cut -c2-
                grep -F "name: \\\"$CNI_NETWORK\\\"" <<< "$dump" | grep -oE -- '(-A|-j) CNI-[0-9a-f]+' | cut -c4-; } | sort -u || true)
    [ -n "$chains" ] || continue
    awk -v chains="$chains" '
      BEGIN { n = split(chains, list, "\n"); for (i = 1; i <= n; i++) ours[list[i]] = 1 }
      /^:/ { if (substr($1, 2) in ours) next }
      /^-A / { if ($2 in ours) next; for (i = 3; i < NF; i++) if (($i == "-j" || $i == "-g") && ($(i + 1) in ours)) next }
      { print }' <<< "$dump" | "$cmd-restore" -T "$table" 2>/dev/null || log "could not clean $cmd table $table"
  done
}
