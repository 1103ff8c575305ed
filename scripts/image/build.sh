#!/usr/bin/env bash
# Builds the project's image from the repo's Dockerfile with buildah: no Docker engine and no registry, only
# deb.debian.org and the npm registry. Writes an OCI archive into the test cluster's image import dir and, when
# the cluster is up, imports it into the node's containerd (pods then use imagePullPolicy: Never). Also a sandbox
# image without node (build_image_without_node) for the kubernetes tests.
# usage: build.sh            env: HERMES_IMAGE (default localhost/hermes-rollouts:dev), HERMES_CACHE
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER_SCRIPTS="$REPO/scripts/cluster"
for part in config deps node; do
  # shellcheck source=/dev/null
  source "$CLUSTER_SCRIPTS/lib/$part.sh"
done
log() { echo "[image] $*" >&2; }

IMAGE="${HERMES_IMAGE:-localhost/hermes-rollouts:dev}"
IMAGE_CACHE="$HERMES_CACHE/image"
IMAGE_TAR="$IMAGE_IMPORT_DIR/$(echo "${IMAGE#localhost/}" | tr '/:' '__').tar"
# A private store: its layer cache survives between runs and nothing else on the host shares it.
BUILDAH="buildah --root $IMAGE_CACHE/storage --runroot /run/hermes-buildah"
# shellcheck source=/dev/null
source "$REPO/scripts/image/base.sh"

main() {
  local t0; t0=$(date +%s.%N)
  mkdir -p "$IMAGE_CACHE" "$IMAGE_IMPORT_DIR"
  # Working containers keep their rootfs mounted; the store is private, so every container in it is ours.
  trap '$BUILDAH rm --all >/dev/null 2>&1 || true' EXIT
  apt_ensure buildah debootstrap
  build_base_image
  # chroot isolation: RUN steps need no OCI runtime (buildah would pick crun, which fails on this hybrid
  # cgroup layout) and share the host network, so no CNI bridge or netns is left behind.
  # The host's CA bundle is lent to `npm ci` only (egress may go through a TLS-inspecting proxy).
  log "buildah bud $IMAGE"
  $BUILDAH bud --layers --force-rm --isolation chroot \
    --build-arg BASE="$BASE_IMAGE" \
    --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca-certificates.crt \
    --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca-certificates.crt:ro \
    -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO" >&2
  log "built in $(elapsed_since "$t0") s; writing $IMAGE_TAR"
  rm -f "$IMAGE_TAR.tmp"
  $BUILDAH push --quiet "$IMAGE" "oci-archive:$IMAGE_TAR.tmp:$IMAGE"
  mv "$IMAGE_TAR.tmp" "$IMAGE_TAR"
  if containerd_ready >/dev/null 2>&1; then
    import_image "$IMAGE_TAR"
  else
    log "cluster not up: the image is imported by the next 'cluster.sh up'"
  fi
  build_image_without_node
  log "$IMAGE ready in $(elapsed_since "$t0") s"
}

# The base without node, npm or this CLI (bash, git, python3 and pytest kept), imported like the project's image:
# the kubernetes tests run sandbox pods of it, so their server can only be the one the inject initContainer copies in.
# Rebuilt only when the base changes (its key names the archive).
IMAGE_WITHOUT_NODE="localhost/debian:bookworm-no-node"
build_image_without_node() {
  local tar="$IMAGE_IMPORT_DIR/debian_bookworm-no-node-$BASE_KEY.tar" ctx
  if [ ! -f "$tar" ]; then
    ctx=$(mktemp -d "$IMAGE_CACHE/no-node-ctx.XXXXXX")
    printf 'FROM %s\nRUN rm -rf /usr/local/bin/node /usr/local/bin/npm /usr/local/bin/npx /usr/local/lib/node_modules\n' \
      "$BASE_IMAGE" > "$ctx/Containerfile"
    $BUILDAH bud --quiet --isolation chroot -t "$IMAGE_WITHOUT_NODE" -f "$ctx/Containerfile" "$ctx" >/dev/null
    rm -rf "$ctx"
    rm -f "$IMAGE_IMPORT_DIR"/debian_bookworm-no-node-*.tar
    $BUILDAH push --quiet "$IMAGE_WITHOUT_NODE" "oci-archive:$tar.tmp:$IMAGE_WITHOUT_NODE"
    mv "$tar.tmp" "$tar"
  fi
  if containerd_ready >/dev/null 2>&1; then import_image "$tar"; fi
}

main "$@"
