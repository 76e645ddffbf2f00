#!/usr/bin/env bash
# Smoke test for metallb/up.sh: Services of type LoadBalancer get an address
# from the pool; the metallb.io/loadBalancerIPs annotation picks it exactly.
# Usage: smoke.sh [STATE_DIR]   (pool from metallb/up.sh: 10.211.0.0/24)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:-${E2E_STATE:-./.run}}"
state="$(cd "$state" && pwd)"
# shellcheck disable=SC1091
source "$state/env"
if [[ -n "${KUBECTL:-}" ]]; then k="$KUBECTL"
elif command -v kubectl >/dev/null; then k=kubectl
else k="$here/../../.venv/bin/kubectl"; fi
ns="lb-smoke-$$"
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi; }
lbip() { $k -n "$ns" get svc "$1" -o jsonpath='{.status.loadBalancer.ingress[0].ip}'; }
wait_ip() { local deadline=$(( $(date +%s) + 30 )); until [[ -n "$(lbip "$1")" ]]; do (( $(date +%s) < deadline )) || return 1; sleep 0.3; done; }

$k create namespace "$ns" >/dev/null
trap '$k delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT
$k apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: any-ip}
spec:
  type: LoadBalancer
  selector: {app: nothing}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: fixed-ip
  annotations: {metallb.io/loadBalancerIPs: 10.211.0.7}
spec:
  type: LoadBalancer
  selector: {app: nothing}
  ports: [{name: http, port: 80, targetPort: 8080}]
YAML
check "any-ip gets an ingress IP" wait_ip any-ip
ip="$(lbip any-ip)"
check "any-ip address $ip is in 10.211.0.0/24" python3 -c "import ipaddress,sys; sys.exit(ipaddress.ip_address('$ip') not in ipaddress.ip_network('10.211.0.0/24'))"
check "fixed-ip gets an ingress IP" wait_ip fixed-ip
check "fixed-ip address is exactly 10.211.0.7 (got $(lbip fixed-ip))" test "$(lbip fixed-ip)" == 10.211.0.7
$k -n "$ns" get svc -o wide
echo "$pass passed, $fail failed"
(( fail == 0 ))
