# Sourced: a throwaway CA, certificates for every component, and kubeconfigs that embed them.

# Each identity: <file name>|<subject>|<extension>. RBAC and the Node authorizer read CN (user) and O (groups).
PKI_IDENTITIES="
apiserver|/CN=kube-apiserver|server
admin|/CN=admin/O=system:masters|client
apiserver-kubelet-client|/CN=kube-apiserver-kubelet-client/O=system:masters|client
controller-manager|/CN=system:kube-controller-manager|client
scheduler|/CN=system:kube-scheduler|client
kubelet|/CN=system:node:$NODE_NAME/O=system:nodes|client
kube-proxy|/CN=system:kube-proxy|client
operator|/CN=operator|client
"

# pki <node ip>: fresh keys each `up` (about 1 s), so a cluster never outlives its credentials.
pki() {
  local node_ip="$1" dir="$CLUSTER_STATE/pki" entry name subject ext
  rm -rf "$dir" && mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 \
    -subj /CN=hermes-test-ca 2>/dev/null
  cat > "$dir/ext.cnf" <<CNF
[server]
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$node_ip,IP:$SERVICE_APISERVER_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
CNF
  while IFS='|' read -r name subject ext; do
    [ -n "$name" ] || continue
    openssl req -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "$subject" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 3650 \
      -out "$dir/$name.crt" -extfile "$dir/ext.cnf" -extensions "$ext" 2>/dev/null
    rm -f "$dir/$name.csr"
  done <<< "$PKI_IDENTITIES"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  for name in admin controller-manager scheduler kubelet kube-proxy operator; do
    kubeconfig "$name" > "$CLUSTER_STATE/$name.kubeconfig"
    chmod 600 "$CLUSTER_STATE/$name.kubeconfig"
  done
}

# kubeconfig <identity>: server on loopback, credentials embedded (one self-contained file per user).
kubeconfig() {
  local dir="$CLUSTER_STATE/pki"
  cat <<YAML
apiVersion: v1
kind: Config
clusters:
- name: hermes-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$dir/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 < "$dir/$1.crt")
    client-key-data: $(base64 -w0 < "$dir/$1.key")
contexts:
- name: hermes-test
  context: {cluster: hermes-test, user: $1}
current-context: hermes-test
YAML
}
