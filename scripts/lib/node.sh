#!/usr/bin/env bash
# Sourced by the project's scripts: puts Node 24 LTS on PATH (bootstrapped from the npm registry where the
# host's node is older than 22) and installs the project's npm dependencies when the lockfile changed.
set -euo pipefail
HERMES_CACHE="${HERMES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-rollouts}"
export HERMES_CACHE
NODE_MAJOR_WANTED=24
NPM_FOR_CI=10.9.4

node_major() { command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  if [ "$(node_major)" -ge 22 ]; then return 0; fi
  local dir="$HERMES_CACHE/node-$NODE_MAJOR_WANTED"
  if [ ! -x "$dir/node_modules/node/bin/node" ]; then
    echo "[setup] host node $(node --version 2>/dev/null || echo none) is older than 22: installing node@$NODE_MAJOR_WANTED from npm into $dir" >&2
    mkdir -p "$dir"
    npm install --no-save --no-audit --no-fund --prefix "$dir" "node@$NODE_MAJOR_WANTED" >&2
  fi
  export PATH="$dir/node_modules/node/bin:$PATH"
  echo "[setup] using node $(node --version)" >&2
}

ensure_npm_deps() {
  local root="$1" stamp
  stamp="$(cat "$root/package-lock.json" "$root/package.json" | sha256sum | cut -c1-16)"
  if [ "$(cat "$root/node_modules/.hermes-stamp" 2>/dev/null)" != "$stamp" ]; then
    # npm 10, as in the image: the registry reachable here has no @cbor-extract/* platform packages (optional,
    # unused), so the lockfile lacks them and npm 11's `npm ci` refuses it where npm 10 installs it.
    echo "[setup] npm ci (npm $NPM_FOR_CI)" >&2
    (cd "$root" && npx --yes "npm@$NPM_FOR_CI" ci --no-audit --no-fund >&2)
    echo "$stamp" > "$root/node_modules/.hermes-stamp"
  fi
}
