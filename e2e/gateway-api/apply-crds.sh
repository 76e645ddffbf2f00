#!/usr/bin/env bash
# Apply the Gateway API CRDs (experimental channel by default) from the Go
# module sigs.k8s.io/gateway-api, fetched through the Go module proxy.
# Usage: apply-crds.sh [STATE_DIR]
# Env:   GATEWAY_API_VERSION (default v1.5.1), GATEWAY_API_CHANNEL (experimental|standard),
#        KUBECTL (default: kubectl on PATH, else the repo .venv/bin/kubectl)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:-${E2E_STATE:-./.run}}"
state="$(cd "$state" && pwd)"
# shellcheck disable=SC1091
source "$state/env"
version="${GATEWAY_API_VERSION:-v1.5.1}"
channel="${GATEWAY_API_CHANNEL:-experimental}"
if [[ -n "${KUBECTL:-}" ]]; then k="$KUBECTL"
elif command -v kubectl >/dev/null; then k=kubectl
else k="$here/../../.venv/bin/kubectl"; fi

dir="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$version" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
crds="$dir/config/crd/$channel"
[[ -d "$crds" ]] || { echo "no $crds" >&2; exit 1; }
# kustomization.yaml is not a manifest; apply every other YAML file.
files=()
for f in "$crds"/*.yaml; do [[ "$(basename "$f")" == kustomization.yaml ]] || files+=(-f "$f"); done
$k apply --server-side --force-conflicts "${files[@]}" >/dev/null
$k wait --for=condition=Established --timeout=60s \
  crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
  crd/httproutes.gateway.networking.k8s.io crd/grpcroutes.gateway.networking.k8s.io \
  crd/referencegrants.gateway.networking.k8s.io >/dev/null
echo "gateway-api $version ($channel) CRDs applied from $crds"
