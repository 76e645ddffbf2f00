#!/usr/bin/env bash
# Build helm (helm.sh/helm/v3/cmd/helm, pinned by this directory's
# go.mod/go.sum as a `tool`) into the e2e cache unless an up-to-date binary is
# already there. "Up to date" = built from the same go.mod/go.sum/build.sh and
# Go version (a sha256 stamp next to the binary). The version flags are the
# ones helm's own Makefile sets: `helm version` names the pinned release, and
# `helm template`/`helm lint` assume the Kubernetes version of the client-go
# helm was built with instead of their v1.20 fallback.
# Usage: build.sh [--force]   prints the binary path on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PORTICO_E2E_CACHE:-$HOME/.cache/portico-e2e}"
bin="$cache/bin/helm"
stamp="$bin.stamp"
mkdir -p "$cache/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0

want="$( (cd "$here" && cat go.mod go.sum build.sh; go version) | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$bin"; exit 0
fi

helm_version="$(awk '$1=="helm.sh/helm/v3"{print $2; exit}' "$here/go.mod")"
k8s_version="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$here/go.mod")"   # v0.MINOR.PATCH
k8s_minor="${k8s_version#v0.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

echo "build.sh: building $bin (helm $helm_version) ..." >&2
start=$(date +%s)
(cd "$here" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" helm.sh/helm/v3/cmd/helm)
mv -f "$bin.tmp" "$bin"
echo "$want" > "$stamp"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
