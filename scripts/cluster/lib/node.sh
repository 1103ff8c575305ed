# Sourced: the one real node: containerd + runc with a CNI bridge, kubelet and kube-proxy (iptables mode).

NODE_DIR="$CLUSTER_STATE/node"
CONTAINERD_DIR="$CLUSTER_STATE/containerd"
PAUSE_IMAGE="localhost/hermes-pause:1"

# The address the node registers with: the source address of the default route, else the first global IPv4.
# kubelet refuses a loopback node IP.
detect_node_ip() {
  local ip
  ip=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1)
  [ -n "$ip" ] || ip=$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
  [ -n "$ip" ] || die "no non-loopback IPv4 address for the node (kubelet refuses loopback)"
  echo "$ip"
}

# Routing between pods and Service IPs: forwarding on, and bridged traffic through iptables so replies from a
# pod to a pod on the same bridge are un-NATed by conntrack (otherwise ClusterIP from pod to pod breaks).
prepare_host_network() {
  echo 1 > /proc/sys/net/ipv4/ip_forward
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter 2>/dev/null || true
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
    PROXY_MASQUERADE_ALL=false
  else
    log "no br_netfilter: kube-proxy masquerades all Service traffic instead"
    PROXY_MASQUERADE_ALL=true
  fi
}

write_containerd_config() {
  mkdir -p "$CONTAINERD_DIR/root" "$CONTAINERD_DIR/net.d" "$NODE_DIR/cni-ipam"
  # restrict_oom_score_adj: kubelet asks for oom_score_adj -998 for every sandbox; where root lacks
  # CAP_SYS_RESOURCE that write fails inside runc ("can't get final child's PID from pipe: EOF").
  # Clamping to containerd's own score is harmless where the capability exists.
  cat > "$CONTAINERD_DIR/config.toml" <<TOML
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  disable_tcp_service = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CONTAINERD_DIR/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$CONTAINERD_DIR/runc"
TOML
  cat > "$CONTAINERD_DIR/net.d/10-$CNI_NETWORK.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "$CNI_NETWORK", "plugins": [
  {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$NODE_DIR/cni-ipam",
            "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
JSON
}

ctr_k8s() { ctr -a "$CONTAINERD_SOCK" -n k8s.io "$@"; }

start_containerd() {
  write_containerd_config
  spawn containerd containerd --config "$CONTAINERD_DIR/config.toml"
  wait_for 30 "containerd" containerd_ready
}

containerd_ready() {
  alive "$(pid_of containerd)" || return 2
  ctr -a "$CONTAINERD_SOCK" version
}

# The pause binary is built from scripts/cluster/pause (Go, static) and cached by its source hash.
pause_binary() {
  local src="$CLUSTER_SCRIPTS/pause/pause.go" out
  out="$K8S_CACHE/pause-$(sha256sum "$src" | cut -c1-12)/pause"
  if [ ! -x "$out" ]; then
    mkdir -p "$(dirname "$out")"
    GO111MODULE=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$src" && mv "$out.tmp" "$out"
  fi
  echo "$out"
}

# A docker-archive tar holding only /pause, written by hand (no registry, and no build tool needed).
write_pause_image() {
  local out="$1" work layer_sha config_sha; work=$(mktemp -d)
  install -m 0755 "$(pause_binary)" "$work/pause"
  tar --numeric-owner --owner=0 --group=0 -C "$work" -cf "$work/layer.tar" pause
  layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir "$work/$layer_sha" && mv "$work/layer.tar" "$work/$layer_sha/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer_sha" > "$work/config.json"
  config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/$config_sha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_sha" "$PAUSE_IMAGE" "$layer_sha" \
    > "$work/manifest.json"
  tar -C "$work" -cf "$out" manifest.json "$config_sha.json" "$layer_sha/layer.tar"
  rm -rf "$work"
}

# import_image <tar>: skipped when this exact file (path, size, mtime) was imported into this containerd root.
import_image() {
  local tar="$1" stamps="$CONTAINERD_DIR/root/hermes-imported" stamp t0
  stamp="$(stat -c '%n %s %Y' "$tar")"
  grep -qxF "$stamp" "$stamps" 2>/dev/null && return 0
  t0=$(date +%s.%N)
  # containerd's snapshotter can lose a parent layer of a cached image between runs ("parent snapshot ... does not
  # exist"): the second import unpacks the layers afresh.
  if ! ctr_k8s images import --all-platforms "$tar" >/dev/null; then
    log "import of $(basename "$tar") failed; retrying once"
    ctr_k8s images import --all-platforms "$tar" >/dev/null
  fi
  echo "$stamp" >> "$stamps"
  log "imported $(basename "$tar") in $(elapsed_since "$t0") s"
}

import_images() {
  local tar
  mkdir -p "$IMAGE_IMPORT_DIR"
  [ -f "$IMAGE_IMPORT_DIR/hermes-pause.tar" ] || write_pause_image "$IMAGE_IMPORT_DIR/hermes-pause.tar"
  for tar in "$IMAGE_IMPORT_DIR"/*.tar; do import_image "$tar"; done
}

# start_kubelet <node ip>
start_kubelet() {
  local node_ip="$1"
  mkdir -p "$NODE_DIR/kubelet" "$NODE_DIR/kubelet-pki"
  cat > "$NODE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: "$CLUSTER_STATE/pki/ca.crt"}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
# A test node on a shared disk: do not evict or garbage-collect images because the host disk is busy.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 1s
serializeImagePulls: false
YAML
  spawn kubelet "$K8S_BIN/kubelet" --config="$NODE_DIR/kubelet.yaml" \
    --container-runtime=remote --container-runtime-endpoint="unix://$CONTAINERD_SOCK" \
    --kubeconfig="$CLUSTER_STATE/kubelet.kubeconfig" --root-dir="$NODE_DIR/kubelet" --cert-dir="$NODE_DIR/kubelet-pki" \
    --hostname-override="$NODE_NAME" --node-ip="$node_ip" --v=1
}

# start_kube_proxy <node ip>
start_kube_proxy() {
  local node_ip="$1"
  cat > "$NODE_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$CLUSTER_STATE/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
# Also the node IP kube-proxy uses (it would otherwise poll for the Node object and may settle on 127.0.0.1).
bindAddress: $node_ip
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {masqueradeAll: $PROXY_MASQUERADE_ALL, minSyncPeriod: 0s, syncPeriod: 30s}
# Zero leaves the host's conntrack sysctls alone (a test node must not retune the host).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  spawn kube-proxy "$K8S_BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml" --v=1
}

node_ready() {
  alive "$(pid_of kubelet)" || return 2
  [ "$(KUBECONFIG="$ADMIN_KUBECONFIG" "$TOOLS_BIN/kubectl" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
