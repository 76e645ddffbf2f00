#!/usr/bin/env bash
# Start the MetalLB controller (IP allocation for Services of type LoadBalancer)
# against a cluster started by ../cluster/up.sh, in the same state dir.
#
# Usage: up.sh [STATE_DIR]     (default: $E2E_STATE, else ./.run)
# Env:   E2E_LB_POOL   address range of the IPAddressPool "default"
#                      (default 10.211.0.0/24; "" = create no pool)
#        KUBECTL       kubectl to use (default: kubectl on PATH, else the repo .venv/bin/kubectl)
#
# What MetalLB's controller needs, minimally (found by reading its main.go):
#   - its CRDs (config/crd/bases in the module zip; the bgppeers conversion
#     webhook patch is skipped: webhooks are off and only v1beta1 pools are used)
#   - namespace metallb-system (--namespace; pools are read only from there)
#   - a Pod object it can GET by --pod-name (it exits otherwise; used as owner of
#     its ConfigurationState) - a placeholder pod that kwok marks Running
#   - --webhook-mode=disabled (no webhook service/certs), --port=0 (no metrics)
#   - no memberlist secret (--ml-secret-name unset; only speakers need it)
#   - kubeconfig via --kubeconfig (controller-runtime flag) or $KUBECONFIG
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:-${E2E_STATE:-./.run}}"
state="$(cd "$state" && pwd)"
# shellcheck disable=SC1091
source "$state/env"
pool="${E2E_LB_POOL-10.211.0.0/24}"
if [[ -n "${KUBECTL:-}" ]]; then k="$KUBECTL"
elif command -v kubectl >/dev/null; then k=kubectl
else k="$here/../../.venv/bin/kubectl"; fi
ns=metallb-system
t0=$(date +%s.%N)
log() { printf '[metallb %5ss] %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -f "$state/pids/metallb-controller.pid" ]] && kill -0 "$(cat "$state/pids/metallb-controller.pid")" 2>/dev/null; then
  die "metallb-controller already running (pid $(cat "$state/pids/metallb-controller.pid"))"
fi
bin="$("$here/build.sh")"

version="$(awk '$1=="require" && $2=="go.universe.tf/metallb"{print $3; exit}' "$here/go.mod")"
moddir="$(cd "$here" && go mod download -json "go.universe.tf/metallb@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
[[ -d "$moddir/config/crd/bases" ]] || die "no CRDs under $moddir/config/crd/bases"

$k apply --server-side -f "$moddir/config/crd/bases" >/dev/null
$k wait --for=condition=Established --timeout=60s crd/ipaddresspools.metallb.io crd/l2advertisements.metallb.io \
  crd/configurationstates.metallb.io crd/bgppeers.metallb.io >/dev/null
log "CRDs from $moddir applied"

$k apply --server-side -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
---
# Placeholder for "the controller's own pod": metallb GETs it at start-up.
apiVersion: v1
kind: Pod
metadata:
  name: metallb-controller
  namespace: $ns
  labels: {app: metallb, component: controller}
spec:
  containers:
  - name: controller
    image: placeholder.invalid/metallb-controller:$version
YAML

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
setsid "$bin" \
  --kubeconfig="$KUBECONFIG" \
  --namespace="$ns" \
  --pod-name=metallb-controller \
  --webhook-mode=disabled \
  --port=0 \
  --health-probe-port="$port" \
  --log-level=info \
  >"$state/logs/metallb-controller.log" 2>&1 </dev/null &
echo $! > "$state/pids/metallb-controller.pid"
log "started metallb-controller (pid $!, health :$port)"
echo "export E2E_METALLB_HEALTH_PORT=$port" >> "$state/env"

deadline=$(( $(date +%s) + 60 ))
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 "$(cat "$state/pids/metallb-controller.pid")" 2>/dev/null || { tail -20 "$state/logs/metallb-controller.log" >&2; die "metallb-controller exited"; }
  (( $(date +%s) < deadline )) || die "timed out waiting for metallb-controller /readyz"
  sleep 0.2
done
log "metallb-controller /readyz: ok"

if [[ -n "$pool" ]]; then
  $k apply --server-side -f - >/dev/null <<YAML
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: default
  namespace: $ns
spec:
  addresses: ["$pool"]
  avoidBuggyIPs: true   # skip .0/.255 network/broadcast addresses
YAML
  log "IPAddressPool default: $pool"
fi
log "done"
