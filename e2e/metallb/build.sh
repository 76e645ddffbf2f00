#!/usr/bin/env bash
# Build the MetalLB controller (package go.universe.tf/metallb/controller, pinned
# by this directory's go.mod/go.sum) into the e2e cache unless an up-to-date
# binary is there. Prints the binary path on stdout.
# Usage: build.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PORTICO_E2E_CACHE:-$HOME/.cache/portico-e2e}"
bin="$cache/bin/metallb-controller"
stamp="$bin.stamp"
mkdir -p "$cache/bin"
want="$( (cd "$here" && cat go.mod go.sum build.sh; go version) | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$bin"; exit 0
fi
echo "build.sh: building $bin ..." >&2
start=$(date +%s)
(cd "$here" && GOTOOLCHAIN=local CGO_ENABLED=0 nice -n 10 \
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" go.universe.tf/metallb/controller)
mv -f "$bin.tmp" "$bin"
echo "$want" > "$stamp"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
