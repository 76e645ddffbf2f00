#!/usr/bin/env bash
# Smoke test for a cluster started by up.sh. Needs kubectl on PATH (or $KUBECTL).
# Usage: smoke.sh [STATE_DIR]
set -euo pipefail
state="${1:-${E2E_STATE:-./.run}}"
state="$(cd "$state" && pwd)"
# shellcheck disable=SC1091
source "$state/env"
k="${KUBECTL:-kubectl}"
ns="smoke-$$"
pass=0 fail=0
ok()   { echo "PASS: $*"; pass=$((pass + 1)); }
bad()  { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
poll() { # timeout_s command...  (retry until success)
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do (( $(date +%s) < deadline )) || return 1; sleep 0.5; done
}

$k create namespace "$ns" >/dev/null
trap '$k delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT
poll 30 $k -n "$ns" get serviceaccount default

# 1. Deployment with 2 replicas -> 2 pods Running+Ready, Deployment Available.
$k -n "$ns" create deployment web --image=registry.invalid/portico/echo:1 --replicas=2 --port=8080 >/dev/null
check "deployment web Available" $k -n "$ns" wait deploy/web --for=condition=Available --timeout=60s
check "2 pods Ready" $k -n "$ns" wait pod -l app=web --for=condition=Ready --timeout=60s
running=$($k -n "$ns" get pods -l app=web --field-selector=status.phase=Running -o name | wc -l)
check "2 pods Running (got $running)" test "$running" -eq 2
$k -n "$ns" get pods -o wide

# 2. Service with selector -> EndpointSlice with 2 ready endpoints.
$k -n "$ns" expose deployment web --port=80 --target-port=8080 >/dev/null
eps_ready() {
  [[ "$($k -n "$ns" get endpointslice -l kubernetes.io/service-name=web \
        -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}' | grep -c .)" == 2 ]]
}
check "EndpointSlice for service web has 2 ready endpoints" poll 30 eps_ready
$k -n "$ns" get endpointslice -o wide

# 3. ServiceAccount token + RBAC: allowed what is granted, denied the rest.
$k -n "$ns" create serviceaccount reader >/dev/null
$k -n "$ns" create role pod-reader --verb=get,list,watch --resource=pods >/dev/null
$k -n "$ns" create rolebinding reader --role=pod-reader --serviceaccount="$ns:reader" >/dev/null
token=$($k -n "$ns" create token reader --duration=10m)
check "token is a JWT" test "$(tr -cd . <<<"$token" | wc -c)" -eq 2
as_sa() { $k --kubeconfig=/dev/null --server="$E2E_APISERVER" --certificate-authority="$E2E_CA" --token="$token" "$@"; }
sa_is()     { [[ "$(as_sa auth whoami -o jsonpath='{.status.userInfo.username}')" == "$1" ]]; }
sa_denied() { local out; if out=$(as_sa "$@" 2>&1); then return 1; fi; grep -q '(Forbidden)' <<<"$out"; }
cannot()    { [[ "$($k "$@" 2>/dev/null)" == no ]]; }
bogus()     { local out; if out=$($k --kubeconfig=/dev/null --server="$E2E_APISERVER" --certificate-authority="$E2E_CA" \
                --token=not-a-real-token get ns 2>&1); then return 1; fi; grep -q '(Unauthorized)' <<<"$out"; }
check "SA token authenticates as system:serviceaccount:$ns:reader" sa_is "system:serviceaccount:$ns:reader"
check "SA can list pods in $ns (granted)" as_sa -n "$ns" get pods
check "SA cannot list secrets in $ns (RBAC Forbidden)" sa_denied -n "$ns" get secrets
check "SA cannot delete pods in $ns (RBAC Forbidden)" sa_denied -n "$ns" delete pods --all
check "SA cannot list pods cluster-wide (RBAC Forbidden)" sa_denied get pods -A
check "auth can-i: SA cannot create deployments" cannot -n "$ns" auth can-i create deployments --as="system:serviceaccount:$ns:reader"
check "bogus token rejected (Unauthorized)" bogus

# 4. Delete the Deployment -> garbage collector removes its ReplicaSet and pods.
$k -n "$ns" delete deployment web --wait=false >/dev/null
rs_gone()   { [[ -z "$($k -n "$ns" get rs -l app=web -o name)" ]]; }
pods_gone() { [[ -z "$($k -n "$ns" get pods -l app=web -o name)" ]]; }
check "GC removed ReplicaSet" poll 60 rs_gone
check "GC removed pods" poll 60 pods_gone

echo "$pass passed, $fail failed"
(( fail == 0 ))
