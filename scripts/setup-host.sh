#!/usr/bin/env bash
# Debian packages the sandboxes, environments and tests use on the host: git for the repository cache and
# worktrees, bubblewrap for slot isolation (slirp4netns for its egress network policy, e2fsprogs to make size-capped
# workspaces), python3-pytest to verify SWE-smith tasks, skopeo and umoci to unpack OCI
# images into root filesystems (src/backends/images), busybox-static as the one binary of the tests' small images.
# Installs only what is missing.
set -euo pipefail
packages=(git bubblewrap slirp4netns e2fsprogs python3 python3-pytest util-linux coreutils curl ca-certificates skopeo umoci busybox-static)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
