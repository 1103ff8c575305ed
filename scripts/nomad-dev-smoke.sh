#!/usr/bin/env bash
# End-to-end check against a real Nomad: starts `nomad agent -dev`, runs a one-item job with `hermes-rollouts run`
# on a Nomad pool (raw_exec, and docker when docker is on PATH), and checks that the pool came up (a sandbox answered
# and the item was scored 1.0) and that nothing is left in Nomad afterwards (no job, no live allocation, no variable).
# Needs: a `nomad` binary (1.7 or later), port 4646 free; for the docker pass, a docker engine the agent can use.
# The docker pool runs a plain image (SMOKE_POOL_IMAGE, python:3.11-slim: no node, no hermes-rollouts) into which the
# job's prestart task injects the server from SMOKE_IMAGE (built from the Dockerfile when missing).
# usage: scripts/nomad-dev-smoke.sh
#   env: SMOKE_DRIVERS ("raw_exec docker"), SMOKE_IMAGE (hermes-rollouts:smoke), SMOKE_POOL_IMAGE (python:3.11-slim)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source scripts/lib/node.sh
ensure_node
ensure_npm_deps "$PWD"

ADDR=http://127.0.0.1:4646
IMAGE="${SMOKE_IMAGE:-hermes-rollouts:smoke}"
POOL_IMAGE="${SMOKE_POOL_IMAGE:-python:3.11-slim}"
DEFAULT_DRIVERS=raw_exec
if command -v docker >/dev/null 2>&1; then DEFAULT_DRIVERS="raw_exec docker"; fi
DRIVERS="${SMOKE_DRIVERS:-$DEFAULT_DRIVERS}"
WORK="$(mktemp -d)"
AGENT_PID=""
log() { echo "[nomad-smoke] $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# Stops the agent; a failed run keeps its files (agent log, job, pool, run output) for a look.
cleanup() {
  local status=$?
  if [ -n "$AGENT_PID" ]; then kill -INT "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Prints a JavaScript expression over the JSON answer of GET $ADDR$1 (`a`; null when Nomad does not answer 200).
nomad_get() {
  node -e '
    const [url, expression] = process.argv.slice(1);
    fetch(url).then((r) => (r.ok ? r.json() : null)).catch(() => null).then((a) => {
      try { console.log(String(eval(expression))); } catch { console.log(""); }
    });' "$ADDR$1" "$2"
}

# Retries a check (a nomad_get printing "true") once a second for $1 seconds.
wait_for() {
  local seconds="$1" what="$2" path="$3" expression="$4"
  for _ in $(seq "$seconds"); do
    if [ "$(nomad_get "$path" "$expression")" = "true" ]; then return 0; fi
    sleep 1
  done
  die "$what: not within ${seconds} s"
}

command -v nomad >/dev/null 2>&1 || die "no nomad binary on PATH"
if [ "$(nomad_get /v1/status/leader 'a !== null')" = "true" ]; then die "a Nomad agent already answers at $ADDR; stop it first"; fi
log "starting nomad agent -dev ($(nomad version | head -1)); its log: $WORK/agent.log"
nomad agent -dev -bind 127.0.0.1 >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
wait_for 60 "the agent elects itself leader" /v1/status/leader 'typeof a === "string" && a !== ""'
wait_for 60 "the dev node is ready" /v1/nodes 'Array.isArray(a) && a.some((n) => n.Status === "ready")'

cat >"$WORK/job.yaml" <<'EOF'
apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: {name: nomad-smoke}
spec:
  poolRef: {name: nomad-smoke}
  environment: {name: shell-task}
  dataset:
    inline: [{id: hello, goal: "write hello to out.txt", check: "grep -qx hello out.txt", solution: "echo hello > out.txt"}]
  model: {builtin: {policy: oracle}}
  groupSize: 1
  limits: {maxTurns: 4, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 300}
EOF

for driver in $DRIVERS; do
  if [ "$driver" = docker ]; then
    wait_for 60 "the docker driver is healthy on the dev node" /v1/nodes 'a.some((n) => n.Drivers?.docker?.Healthy === true)'
    if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
      log "building $IMAGE from the Dockerfile"
      docker build -t "$IMAGE" .
    fi
  fi
  # raw_exec runs this checkout's CLI on the host and ignores the image.
  cat >"$WORK/pool.yaml" <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: {name: nomad-smoke}
spec:
  backend: nomad
  minSandboxes: 1
  maxSandboxes: 1
  slotsPerSandbox: 1
  image: $POOL_IMAGE
  nomad: {address: "$ADDR", datacenters: ["*"], driver: $driver, serverImage: "$IMAGE"}
EOF
  log "$driver: hermes-rollouts run (the pool must come up and the item score 1.0)"
  node bin/hermes-rollouts.js run "$WORK/job.yaml" --pool "$WORK/pool.yaml" --out "$WORK/out-$driver" ||
    die "$driver: the run failed (agent log: $WORK/agent.log)"
  summary="$WORK/out-$driver/summary.json"
  [ "$(node -p "const s = require('$summary'); s.succeeded && s.backend === 'nomad' && s.passed === 1")" = "true" ] ||
    die "$driver: the item was not scored 1.0: $(cat "$summary")"
  # The run terminated its sandboxes: jobs purged at once, allocations stopped when the evaluations ran.
  wait_for 30 "$driver: no sandbox job left" "/v1/jobs?prefix=hr-" 'Array.isArray(a) && a.length === 0'
  wait_for 60 "$driver: no live allocation left" /v1/allocations \
    'Array.isArray(a) && !a.some((x) => x.JobID.startsWith("hr-") && (x.DesiredStatus === "run" || x.ClientStatus === "running"))'
  wait_for 10 "$driver: no token variable left" "/v1/vars?prefix=nomad/jobs/hr-" 'Array.isArray(a) && a.length === 0'
  log "$driver: ok"
done
log "all passed: $DRIVERS"
