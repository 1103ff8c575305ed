# Sourced: `build` compiles Kubernetes 1.20.2 from Debian's orig tarball into $K8S_BIN (skipped on a cache hit).
# Two offline fixes make the tree build and run with Debian's Go 1.19:
#  - pkg/generated/openapi/zz_generated.openapi.go is generated at build time upstream and absent from the
#    tarball: we run the vendored openapi-gen with the inputs of build/root/Makefile.generated_files;
#  - vendored reflect2 1.0.1 crashes on Go >= 1.18 (fatal error in mapiternext): swapped for Debian's 1.0.2.
# GOPATH mode (GO111MODULE=off) as Debian's own packaging does; module mode wants go.mod updates.

build() {
  if [ -x "$K8S_BIN/kube-proxy" ]; then log "kubernetes binaries cached: $K8S_BIN"; return 0; fi
  command -v go >/dev/null || die "go is missing: run '$0 deps' first"
  [ -d "$REFLECT2_ROOT" ] || die "reflect2 source is missing: run '$0 deps' first"
  local t0 work tree tarball; t0=$(date +%s.%N)
  work="$K8S_CACHE/work"; tree="$work/gopath/src/k8s.io/kubernetes"; tarball="$K8S_CACHE/dl/$K8S_ORIG"
  rm -rf "$work"; mkdir -p "$work/gopath/src/k8s.io" "$K8S_CACHE/dl"
  if [ ! -f "$tarball" ]; then
    log "downloading $K8S_ORIG_URL"
    curl -fsSL -o "$tarball.tmp" "$K8S_ORIG_URL" && mv "$tarball.tmp" "$tarball"
  fi
  echo "$K8S_ORIG_SHA256  $tarball" | sha256sum -c --quiet - >&2 || { rm -f "$tarball"; die "checksum mismatch: $tarball"; }
  tar -xzf "$tarball" -C "$work/gopath/src/k8s.io"
  mv "$work/gopath/src/k8s.io/kubernetes-$K8S_VERSION" "$tree"
  (
    cd "$tree"
    export GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE="$work/gocache"
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r "$REFLECT2_ROOT/usr/share/gocode/src/github.com/modern-go/reflect2" vendor/github.com/modern-go/
    generate_openapi
    log "go build $K8S_BINARIES (about 8 min on 2 cores)"
    local targets="" b
    for b in $K8S_BINARIES; do targets="$targets ./cmd/$b"; done
    rm -rf "$K8S_BIN.tmp" && mkdir -p "$K8S_BIN.tmp"
    # shellcheck disable=SC2086
    go build -trimpath -ldflags "$(version_ldflags)" -o "$K8S_BIN.tmp/" $targets
  )
  rm -rf "$K8S_BIN" && mv "$K8S_BIN.tmp" "$K8S_BIN" && rm -rf "$work"
  log "built kubernetes $K8S_VERSION in $(elapsed_since "$t0") s: $K8S_BIN"
}

generate_openapi() {
  log "generating the OpenAPI definitions"
  go build -o _output/openapi-gen ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  local dirs inputs
  dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
    | sed 's|^./staging/src|vendor|; s|/[^/]*$||; s|^./||' | LC_ALL=C sort -u \
    | grep -v -e '^vendor/k8s.io/code-generator' -e '^vendor/k8s.io/sample-apiserver')
  # shellcheck disable=SC2086
  inputs=$(for d in $dirs; do find "$d" -maxdepth 1 -type f -name '*.go'; done \
    | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' \
    | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  _output/openapi-gen -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r _output/violations.report
  # Same API-rule report as upstream means we generated from the same inputs.
  diff -q _output/violations.report api/api-rules/violation_exceptions.list >/dev/null \
    || die "openapi-gen report differs from upstream's violation_exceptions.list"
}

# Stamps /version (kubectl and helm read it; unstamped binaries report v0.0.0-master).
version_ldflags() {
  local flags="-s -w" pkg
  for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    flags="$flags -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
    flags="$flags -X $pkg.gitCommit=$K8S_COMMIT -X $pkg.buildDate=2021-01-13T13:20:00Z"
  done
  echo "$flags"
}
