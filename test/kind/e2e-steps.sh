#!/usr/bin/env bash
# The one end-to-end test of hermes-rollouts on a cluster, shared by users' kind CI (test/kind/run-kind.sh) and our
# CI on the local control plane with its real node (test/integration/e2e/e2e.test.ts). Runs against whatever
# cluster KUBECONFIG points at, with kubectl and helm (4) on PATH, and needs no cluster DNS (Services are reached
# by ClusterIP, runners reach the controller at its pod IP).
#
#   usage: e2e-steps.sh <image> [<pullPolicy>]     e.g. e2e-steps.sh localhost/hermes-rollouts:dev Never
#
# It installs the chart with the in-cluster mock Modal, checks `helm test`, runs a RolloutJob on the built-in oracle
# model against a SandboxPool on the mock Modal, asserts status, sink, runner logs, printer columns and Events,
# upgrades the release, uninstalls it and checks nothing of it remains. On failure it prints `kubectl describe`
# and logs (also written to $HERMES_E2E_ARTIFACTS).
#
# env: HERMES_E2E_NAMESPACE (default hermes-e2e-<random>, created and deleted here), HERMES_E2E_RELEASE (hermes-e2e),
#      HERMES_E2E_RBAC_SCOPE (namespace: the controller watches only its namespace, safe on a shared cluster;
#      cluster: ClusterRole), HERMES_E2E_ITEMS (4), HERMES_E2E_DELETE_CRDS (0; 1 deletes the CRDs at the end:
#      only on a cluster of your own, it deletes every SandboxPool and RolloutJob), HERMES_E2E_ARTIFACTS.
set -euo pipefail

IMAGE="${1:?usage: e2e-steps.sh <image> [<pullPolicy>]}"
PULL_POLICY="${2:-IfNotPresent}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHART="$REPO/deploy/helm/hermes-rollouts"
NS="${HERMES_E2E_NAMESPACE:-hermes-e2e-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}"
RELEASE="${HERMES_E2E_RELEASE:-hermes-e2e}"
SCOPE="${HERMES_E2E_RBAC_SCOPE:-namespace}"
ITEMS="${HERMES_E2E_ITEMS:-4}"
ARTIFACTS="${HERMES_E2E_ARTIFACTS:-$(mktemp -d -t hermes-e2e-XXXXXX)}"
FULLNAME="$RELEASE-hermes-rollouts"
[[ "$RELEASE" == *hermes-rollouts* ]] && FULLNAME="$RELEASE"
JOB=oracle
POOL=mock-modal
IMAGE_REPOSITORY="${IMAGE%:*}"
IMAGE_TAG="${IMAGE##*:}"
[[ "$IMAGE_TAG" == "$IMAGE" || "$IMAGE_TAG" == */* ]] && { IMAGE_REPOSITORY="$IMAGE"; IMAGE_TAG=latest; }
T0=$(date +%s)
mkdir -p "$ARTIFACTS"

step() { echo "[e2e +$(($(date +%s) - T0))s] $*"; }
fail() { echo "[e2e] FAIL: $*" >&2; exit 1; }
k() { kubectl -n "$NS" "$@"; }
jsonpath() { k get "$1" -o "jsonpath=$2"; }
expect_eq() { [[ "$2" == "$3" ]] || fail "$1: expected '$3', got '$2'"; echo "  ok: $1 = $3"; }
expect_match() { grep -Eq -- "$2" <<<"$3" || fail "$1: no match for /$2/ in:"$'\n'"$3"; echo "  ok: $1 ~ /$2/"; }
release_installed() { helm status "$RELEASE" -n "$NS" >/dev/null 2>&1; }

collect_diagnostics() {
  set +e
  {
    echo "===== kubectl get (namespace $NS)"
    k get all,sandboxpools,rolloutjobs,secrets,leases -o wide
    echo "===== kubectl describe"
    k describe deployments,pods,sandboxpools,rolloutjobs
    echo "===== events"
    k get events --sort-by=.lastTimestamp
    for pod in $(k get pods -o name); do
      echo "===== logs $pod"; k logs "$pod" --all-containers --tail=200
      echo "===== previous logs $pod"; k logs "$pod" --all-containers --previous --tail=50 2>/dev/null
    done
    [[ -s "$ARTIFACTS/runner.log" ]] && { echo "===== runner log (captured)"; tail -50 "$ARTIFACTS/runner.log"; }
  } >"$ARTIFACTS/diagnostics.txt" 2>&1
  cat "$ARTIFACTS/diagnostics.txt" >&2
  echo "[e2e] diagnostics in $ARTIFACTS/diagnostics.txt" >&2
}

# Objects with finalizers go while the controller still runs; then the release, the namespace, optionally the CRDs.
cleanup() {
  local status=$?
  set +e
  [[ -n "${LOG_FOLLOWER:-}" ]] && kill "$LOG_FOLLOWER" 2>/dev/null
  if ((status != 0)); then collect_diagnostics; fi
  if k get namespace "$NS" >/dev/null 2>&1 || kubectl get namespace "$NS" >/dev/null 2>&1; then
    k delete rolloutjobs,sandboxpools --all --timeout=60s >/dev/null 2>&1
    for obj in $(k get rolloutjobs,sandboxpools -o name 2>/dev/null); do
      k patch "$obj" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    done
    release_installed && helm uninstall "$RELEASE" -n "$NS" --timeout=60s >/dev/null 2>&1
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
  fi
  if [[ "${HERMES_E2E_DELETE_CRDS:-0}" == 1 ]]; then
    kubectl delete -f "$CHART/crds/" --ignore-not-found >/dev/null 2>&1
  fi
  step "$( ((status == 0)) && echo PASSED || echo "FAILED (exit $status)") in $(($(date +%s) - T0)) s"
  exit "$status"
}
trap cleanup EXIT

step "cluster $(kubectl config current-context 2>/dev/null || echo '?'); image $IMAGE_REPOSITORY:$IMAGE_TAG ($PULL_POLICY); namespace $NS; rbac scope $SCOPE"
kubectl version >/dev/null 2>&1 || fail "no cluster at KUBECONFIG=${KUBECONFIG:-~/.kube/config}"

# --- install -----------------------------------------------------------------------------------------------------
# The CRDs carry CEL rules (x-kubernetes-validations) that Kubernetes < 1.25 does not know: applied without client
# validation, and the release skips crds/ (Helm never upgrades or deletes CRDs anyway).
step "install CRDs"
kubectl apply --validate=false -f "$CHART/crds/" >/dev/null
# Polled, not `kubectl wait`: kubectl 1.20 fails at once on a new CRD that has no status conditions yet.
for ((tries = 0; ; tries++)); do
  established=$(kubectl get crd/sandboxpools.hermes-rollouts.dev crd/rolloutjobs.hermes-rollouts.dev \
    -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{" "}{end}' 2>/dev/null) || true
  [[ "$established" == "True True " ]] && break
  ((tries < 240)) || fail "CRDs not Established within 60 s"
  sleep 0.25
done

kubectl create namespace "$NS" >/dev/null
# Pods are admitted once the namespace's default ServiceAccount exists.
until k get serviceaccount default >/dev/null 2>&1; do sleep 0.5; done

helm_values=(--set "image.repository=$IMAGE_REPOSITORY" --set "image.tag=$IMAGE_TAG" --set "image.pullPolicy=$PULL_POLICY"
  --set "rbac.scope=$SCOPE" --set mockModal.enabled=true --set controller.terminationGracePeriodSeconds=5)
step "helm install $RELEASE"
helm install "$RELEASE" "$CHART" -n "$NS" --skip-crds --server-side=false "${helm_values[@]}" >"$ARTIFACTS/helm-install.txt"
grep -q "mock Modal server runs for CI" "$ARTIFACTS/helm-install.txt" || fail "NOTES do not explain the mock Modal"

step "wait for the controller and the mock Modal"
k rollout status "deployment/$FULLNAME" --timeout=180s
k rollout status "deployment/$FULLNAME-mock-modal" --timeout=120s
ca_fingerprint() { jsonpath "secret/$FULLNAME-mock-modal-ca" '{.data.tls\.crt}' | cksum | cut -d' ' -f1; }
ca_before=$(ca_fingerprint)

step "helm test"
helm test "$RELEASE" -n "$NS" --logs --timeout=120s >"$ARTIFACTS/helm-test.txt" 2>&1 || { cat "$ARTIFACTS/helm-test.txt"; fail "helm test"; }
expect_match "helm test" "Phase: +Succeeded" "$(cat "$ARTIFACTS/helm-test.txt")"
expect_match "helm test checked /metrics" "/metrics: ok" "$(cat "$ARTIFACTS/helm-test.txt")"

# --- a pool on the mock Modal and a job on the built-in model ---------------------------------------------------
mock_ip=$(jsonpath "service/$FULLNAME-mock-modal" '{.spec.clusterIP}')
mock_port=$(jsonpath "service/$FULLNAME-mock-modal" '{.spec.ports[?(@.name=="grpc")].port}')
step "SandboxPool $POOL on the mock Modal at $mock_ip:$mock_port"
# The mock accepts any token; the Secret still goes through spec.modal.credentialsSecretRef as it would for Modal.
k create secret generic mock-modal-credentials --from-literal=MODAL_TOKEN_ID=ak-e2e --from-literal=MODAL_TOKEN_SECRET=as-e2e >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: { name: $POOL }
spec:
  backend: modal
  minSandboxes: 1
  maxSandboxes: 1
  slotsPerSandbox: 2
  image: python:3.11-slim
  leaseTTLSeconds: 15
  # The in-cluster mock runs sandboxes in its own pod, where bubblewrap cannot run (see the pool "caged" below).
  isolation: { mode: none }
  modal:
    appName: hermes-e2e
    serverURL: http://$mock_ip:$mock_port
    credentialsSecretRef: { name: mock-modal-credentials }
EOF
k wait --for=condition=Ready "sandboxpool/$POOL" --timeout=120s >/dev/null
expect_eq "pool ready sandboxes" "$(jsonpath "sandboxpool/$POOL" '{.status.sandboxes.ready}')" 1
expect_eq "pool total slots" "$(jsonpath "sandboxpool/$POOL" '{.status.slots.total}')" 2

# Fail closed: the chart's controller pod (non-root, no capabilities, RuntimeDefault seccomp) cannot start bubblewrap,
# so a local pool that keeps the default isolation is not Ready and says why, instead of running slots unconfined.
step "SandboxPool caged (backend local, isolation bwrap by default) is not Ready in the chart's controller pod"
k apply -f - >/dev/null <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: { name: caged }
spec:
  backend: local
  minSandboxes: 1
  maxSandboxes: 1
  slotsPerSandbox: 1
EOF
k wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'=IsolationUnavailable sandboxpool/caged --timeout=60s >/dev/null \
  || fail "pool caged: Ready reason $(jsonpath sandboxpool/caged '{.status.conditions[?(@.type=="Ready")].reason}')"
expect_eq "caged: Isolated reason" "$(jsonpath sandboxpool/caged '{.status.conditions[?(@.type=="Isolated")].reason}')" ProbeFailed
k delete sandboxpool caged --wait=true --timeout=60s >/dev/null

step "RolloutJob $JOB: $ITEMS shell-task items, built-in oracle model, groupSize 2"
items_yaml=""
for ((i = 0; i < ITEMS; i++)); do
  items_yaml+="      - { id: t$i, goal: \"write $i into answer.txt\", check: 'test \"\$(cat answer.txt)\" = $i', solution: \"echo $i > answer.txt\" }"$'\n'
done
# The runner pod may live about a second: a poll can miss it. A watch started before the job exists sees every
# phase it goes through; record where it ran and follow its log.
(
  # Fields every version of the pod has (containerStatuses[0] is out of bounds while it is Pending: kubectl quits).
  fields='{.metadata.name} {.status.phase} {.spec.nodeName} {.spec.containers[0].image} {.spec.containers[0].imagePullPolicy}{"\n"}'
  exec 3< <(timeout 200 kubectl -n "$NS" get pods -l "hermes-rollouts.dev/job=$JOB" --watch -o "jsonpath=$fields" 2>/dev/null)
  watcher=$!
  while read -r name phase node image pull <&3; do
    [[ "$name" == "$JOB-runner-0" && "$phase" =~ ^(Running|Succeeded|Failed)$ ]] || continue
    printf '%s %s %s' "$node" "$image" "$pull" >"$ARTIFACTS/runner-pod.txt"
    break
  done
  kill "$watcher" 2>/dev/null
  [[ -s "$ARTIFACTS/runner-pod.txt" ]] && k logs -f "pod/$JOB-runner-0" >"$ARTIFACTS/runner.log" 2>&1
) &
LOG_FOLLOWER=$!
k apply -f - >/dev/null <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: { name: $JOB }
spec:
  poolRef: { name: $POOL }
  environment: { name: shell-task }
  dataset:
    inline:
$items_yaml
  model: { builtin: { policy: oracle } }
  groupSize: 2
  limits: { maxTurns: 6, toolTimeoutSeconds: 30, trajectoryTimeoutSeconds: 60 }
  runners: { replicas: 1, trajectoriesPerRunner: 2 }
  backoffLimit: 2
EOF


k wait --for=condition=Complete "rolloutjob/$JOB" --timeout=180s >/dev/null
step "job Complete; checking status, sink, runner, printer columns, Events"
expect_eq "status.phase" "$(jsonpath "rolloutjob/$JOB" '{.status.phase}')" Complete
expect_eq "status.passRate" "$(jsonpath "rolloutjob/$JOB" '{.status.passRate}')" 1
expect_eq "progress.items" "$(jsonpath "rolloutjob/$JOB" '{.status.progress.items}')" "$ITEMS"
expect_eq "progress.groups" "$(jsonpath "rolloutjob/$JOB" '{.status.progress.groups}')" "$ITEMS"
expect_eq "progress.scored" "$(jsonpath "rolloutjob/$JOB" '{.status.progress.scored}')" $((ITEMS * 2))
expect_eq "progress.failed" "$(jsonpath "rolloutjob/$JOB" '{.status.progress.failed}')" 0
expect_eq "completedIndexes" "$(jsonpath "rolloutjob/$JOB" '{.status.completedIndexes}')" "0-$((ITEMS - 1))"

# The sink: the results JSONL in the controller's data dir, read inside its pod (which has node).
results=$(jsonpath "rolloutjob/$JOB" '{.status.resultsLocation}')
[[ -n "$results" ]] || fail "status.resultsLocation is empty"
# shellcheck disable=SC2016 # JavaScript, not shell
sink=$(k exec "deployment/$FULLNAME" -c controller -- node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const indexes = lines.map((l) => l.index).sort((a, b) => a - b);
  const allScored = lines.every((l) => l.group.scores.length === 2 && l.group.scores.every((s) => s === 1));
  console.log(`${indexes.join(",")} ${allScored}`);' "$results")
expected_indexes=$(seq -s, 0 $((ITEMS - 1)))
expect_eq "sink: each item exactly once, every trajectory scored 1" "$sink" "$expected_indexes true"

wait "$LOG_FOLLOWER" || true
LOG_FOLLOWER=""
[[ -s "$ARTIFACTS/runner-pod.txt" ]] || fail "runner pod never ran"
read -r runner_node runner_image runner_pull <"$ARTIFACTS/runner-pod.txt" || true  # no trailing newline
expect_match "runner pod ran on a node" "." "$runner_node"
expect_match "runner pod image" "(^|/)${IMAGE_REPOSITORY##*/}:$IMAGE_TAG\$" "$runner_image"
expect_eq "runner pod imagePullPolicy" "$runner_pull" "$PULL_POLICY"
runner_log=$(cat "$ARTIFACTS/runner.log")
expect_eq "runner log: groups scored" "$(grep -c '"msg":"group scored"' <<<"$runner_log")" "$ITEMS"
expect_match "runner log: finished" '"reason":"done".*"msg":"runner finished"' "$runner_log"

columns=$(k get rolloutjobs)
expect_match "kubectl get rolloutjobs header" "^NAME +POOL +STATUS +PROGRESS +PASS-RATE +AGE" "$columns"
expect_match "kubectl get rolloutjobs row" "^$JOB +$POOL +Complete +$ITEMS/$ITEMS +1 " "$columns"
described=$(k describe "rolloutjob/$JOB")
expect_match "describe: Complete condition" "Type: +Complete" "$described"
expect_match "describe: RunnerCreated Event" "Normal +RunnerCreated" "$described"
expect_match "describe: JobComplete Event" "Normal +JobComplete" "$described"
# The pool's status catches up with the job's released leases on its next reconcile.
k wait --for=jsonpath='{.status.slots.leased}'=0 "sandboxpool/$POOL" --timeout=60s >/dev/null
expect_eq "slots back in the pool (free)" "$(jsonpath "sandboxpool/$POOL" '{.status.slots.free}')" 2

# --- swe-smith-oracle on the bundled mini-dataset ------------------------------------------------------------------
# The controller generates the bundled repositories and serves them over git HTTP on its pod IP; setup clones them
# into the slots inside the mock Modal's sandboxes, and verify runs the tasks' pytest node ids there.
step "RolloutJob swe: bundled swe-smith-mini (2 items), swe-smith-oracle env, built-in oracle model"
k apply -f - >/dev/null <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: { name: swe }
spec:
  poolRef: { name: $POOL }
  environment: { name: swe-smith-oracle }
  dataset: { bundled: swe-smith-mini, maxItems: 2 }
  model: { builtin: { policy: oracle } }
  groupSize: 1
  limits: { maxTurns: 8, toolTimeoutSeconds: 60, trajectoryTimeoutSeconds: 120 }
  runners: { replicas: 1, trajectoriesPerRunner: 2 }
  backoffLimit: 2
EOF
k wait --for=condition=Complete rolloutjob/swe --timeout=240s >/dev/null
expect_eq "swe: status.passRate" "$(jsonpath rolloutjob/swe '{.status.passRate}')" 1
expect_eq "swe: progress.groups" "$(jsonpath rolloutjob/swe '{.status.progress.groups}')" 2
k delete rolloutjob swe --wait=true --timeout=60s >/dev/null

# --- backend kubernetes: sandboxes as pods of this namespace -------------------------------------------------------
# The controller creates one pod per sandbox (this same image runs sandbox-server), reaches it at its pod IP, and,
# with sandboxNetworkPolicy on (the chart's default), a NetworkPolicy lets only the controller's pods in.
step "SandboxPool pods (backend kubernetes) and a RolloutJob of $ITEMS shell-task items on it"
k apply -f - >/dev/null <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: SandboxPool
metadata: { name: pods }
spec:
  backend: kubernetes
  image: $IMAGE
  minSandboxes: 1
  maxSandboxes: 1
  slotsPerSandbox: 2
  resources: { cpu: 200m, memory: 512Mi }
  # This cluster's runc masks /proc in pods, so bubblewrap cannot mount one (docs/operations.md).
  isolation: { mode: none }
  kubernetes: { imagePullPolicy: $PULL_POLICY }
EOF
k wait --for=condition=Ready sandboxpool/pods --timeout=180s >/dev/null
expect_eq "pods: sandbox pods" "$(k get pods -l hermes-rollouts.dev/pool=pods -o name | wc -l | tr -d ' ')" 1
expect_eq "pods: NetworkPolicy of the pool" "$(k get networkpolicy -l hermes-rollouts.dev/pool=pods -o name)" \
  networkpolicy.networking.k8s.io/pods-sandboxes
k apply -f - >/dev/null <<EOF
apiVersion: hermes-rollouts.dev/v1alpha1
kind: RolloutJob
metadata: { name: pods-job }
spec:
  poolRef: { name: pods }
  environment: { name: shell-task }
  dataset:
    inline:
$items_yaml
  model: { builtin: { policy: oracle } }
  groupSize: 1
  limits: { maxTurns: 6, toolTimeoutSeconds: 30, trajectoryTimeoutSeconds: 60 }
  runners: { replicas: 1, trajectoriesPerRunner: 2 }
  backoffLimit: 2
EOF
k wait --for=condition=Complete rolloutjob/pods-job --timeout=180s >/dev/null
expect_eq "pods-job: status.passRate" "$(jsonpath rolloutjob/pods-job '{.status.passRate}')" 1
k delete rolloutjob pods-job --wait=true --timeout=60s >/dev/null
k delete sandboxpool pods --timeout=90s >/dev/null
for _ in $(seq 60); do [[ -z "$(k get pods -l hermes-rollouts.dev/pool=pods -o name)" ]] && break; sleep 1; done
expect_eq "pods: sandbox pods left after the pool's deletion" "$(k get pods -l hermes-rollouts.dev/pool=pods -o name)" ""

# --- upgrade -----------------------------------------------------------------------------------------------------
step "helm upgrade: controller.logLevel=debug"
old_pod=$(k get pods -l app.kubernetes.io/component=controller -o jsonpath='{.items[0].metadata.name}')
helm upgrade "$RELEASE" "$CHART" -n "$NS" --skip-crds --server-side=false --reuse-values --set controller.logLevel=debug >/dev/null
k rollout status "deployment/$FULLNAME" --timeout=180s
expect_eq "release revision" "$(helm status "$RELEASE" -n "$NS" -o json | grep -Eo '"version": ?[0-9]+' | grep -Eo '[0-9]+$')" 2
# A terminating pod still reports phase Running: wait for the old one to go before naming the new one.
k wait --for=delete "pod/$old_pod" --timeout=90s >/dev/null || fail "the old controller pod $old_pod was not replaced by the upgrade"
new_pod=$(k get pods -l app.kubernetes.io/component=controller --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')
[[ -n "$new_pod" && "$new_pod" != "$old_pod" ]] || fail "the controller pod was not replaced by the upgrade"
expect_eq "new controller LOG_LEVEL" "$(k get "pod/$new_pod" -o jsonpath='{.spec.containers[0].env[?(@.name=="LOG_LEVEL")].value}')" debug
expect_eq "mock Modal CA kept across the upgrade" "$(ca_fingerprint)" "$ca_before"
helm test "$RELEASE" -n "$NS" --timeout=120s >/dev/null
echo "  ok: helm test after the upgrade"
expect_eq "finished job untouched by the new controller" "$(jsonpath "rolloutjob/$JOB" '{.status.phase}')" Complete

# --- teardown ----------------------------------------------------------------------------------------------------
step "delete the job and the pool (finalizers: runners, leases, sandboxes)"
k delete "rolloutjob/$JOB" --timeout=60s >/dev/null
k delete "sandboxpool/$POOL" --timeout=90s >/dev/null
k delete secret mock-modal-credentials >/dev/null

step "helm uninstall"
# kubelet 1.20 can take up to a minute to drop a deleted pod object after its containers stop.
helm uninstall "$RELEASE" -n "$NS" --wait --timeout=240s >/dev/null
selector="app.kubernetes.io/instance=$RELEASE"
release_leftovers() {
  k get all,secrets,configmaps,serviceaccounts,roles,rolebindings,persistentvolumeclaims -l "$selector" -o name
  kubectl get clusterroles,clusterrolebindings -l "$selector" -o name
}
# Pods and ReplicaSets go by garbage collection after their Deployment: give it a minute.
for _ in $(seq 60); do [[ -z "$(release_leftovers)" ]] && break; sleep 1; done
expect_eq "resources of the release left" "$(release_leftovers)" ""
expect_eq "pods left in the namespace" "$(k get pods -o name)" ""
# Not the release's: the controller's leader-election Lease, which goes with the namespace.
echo "  left in $NS (not the release's): $(k get leases,secrets,configmaps,serviceaccounts -o name | tr '\n' ' ')"
