# Sourced: etcd, kube-apiserver, kube-controller-manager and kube-scheduler as background processes.
# Pid files live in $CLUSTER_STATE/pids, logs in $CLUSTER_STATE/logs.

# spawn <name> <command...>: starts a component detached from our stdin/stdout, records its pid.
spawn() {
  local name="$1"; shift
  setsid "$@" < /dev/null > "$CLUSTER_STATE/logs/$name.log" 2>&1 &
  echo $! > "$CLUSTER_STATE/pids/$name"
}

admin_curl() {
  curl -sf --cacert "$CLUSTER_STATE/pki/ca.crt" --cert "$CLUSTER_STATE/pki/admin.crt" \
    --key "$CLUSTER_STATE/pki/admin.key" "https://127.0.0.1:$API_PORT$1"
}

start_etcd() {
  local data
  # tmpfs when there is room: no fsync cost (about 125 MB used, half of it WAL preallocation).
  if [ "$(df -Pm /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -gt 1024 ] 2>/dev/null; then
    data=$(mktemp -d /dev/shm/hermes-etcd.XXXXXX)
  else
    data=$(mktemp -d "$CLUSTER_STATE/etcd.XXXXXX")
  fi
  echo "$data" > "$CLUSTER_STATE/etcd.datadir"
  spawn etcd "$ETCD_BIN" --name hermes --data-dir "$data" --logger zap --log-level warn \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "hermes=http://127.0.0.1:$ETCD_PEER_PORT"
}

# start_apiserver <node ip>: clients use 127.0.0.1; pods reach it as the `kubernetes` Service, whose endpoint
# is the node IP (so it listens on all addresses, still TLS with client certificates only).
start_apiserver() {
  local node_ip="$1" p="$CLUSTER_STATE/pki"
  spawn kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$node_ip" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true --profiling=false
  wait_for 60 "kube-apiserver /readyz" apiserver_ready || { tail -20 "$CLUSTER_STATE/logs/kube-apiserver.log" >&2; return 1; }
}

apiserver_ready() {
  alive "$(pid_of kube-apiserver)" || { log "kube-apiserver exited"; return 2; }
  admin_curl /readyz
}

start_controllers() {
  local p="$CLUSTER_STATE/pki"
  # No cloud, and pod IPs come from the CNI's own IPAM: those controllers stay off.
  spawn kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig="$CLUSTER_STATE/controller-manager.kubeconfig" \
    --secure-port=0 --port=0 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --controllers='*,-nodeipam,-cloud-node-lifecycle,-route,-service'
  spawn kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$CLUSTER_STATE/scheduler.kubeconfig" \
    --secure-port=0 --port=0 --leader-elect=false
}

# Pods that mount the default ServiceAccount token are refused until the token controller made its Secret.
default_token_ready() {
  admin_curl /api/v1/namespaces/default/serviceaccounts/default | grep -q '"secrets"'
}
