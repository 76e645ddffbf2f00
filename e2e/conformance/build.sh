#!/usr/bin/env bash
# Build the Gateway API conformance pieces (sigs.k8s.io/gateway-api/conformance
# v1.5.1, pinned by this directory's go.mod/go.sum) into the e2e cache unless
# up-to-date binaries are there. Prints the three binary paths on stdout, one a
# line, in this order:
#   portico-conformance  the suite's test binary (go test -c of this module)
#   echo-basic           sigs.k8s.io/gateway-api/conformance/echo-basic, the
#                        gcr.io/k8s-staging-gateway-api/echo-basic image's program
#   conformance-dns      ./dnsserver, standing in for the suite's coredns image
# Usage: build.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PORTICO_E2E_CACHE:-$HOME/.cache/portico-e2e}"
mkdir -p "$cache/bin"
force="${1:-}"
export GOTOOLCHAIN=local CGO_ENABLED=0

# stamp_of NAME FILE...: a hash of the module pins, this script, the Go version
# and the named source files of this module.
stamp_of() {
  (cd "$here" && cat go.mod go.sum build.sh "$@"; go version) | sha256sum | cut -d' ' -f1
}

# build NAME "SOURCES" "GO SUBCOMMAND" PACKAGE: go SUBCOMMAND the package into
# $cache/bin/NAME unless the stamp of NAME matches.
build() {
  local name="$1" sources="$2" subcmd="$3" pkg="$4"
  local bin="$cache/bin/$name" stamp="$cache/bin/$name.stamp" want start
  # shellcheck disable=SC2086
  want="$(stamp_of $sources)"
  if [[ "$force" != "--force" && -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$bin"; return
  fi
  echo "build.sh: building $bin ..." >&2
  start=$(date +%s)
  # shellcheck disable=SC2086
  (cd "$here" && nice -n 10 go $subcmd -trimpath -ldflags "-s -w" -o "$bin.tmp" "$pkg")
  mv -f "$bin.tmp" "$bin"
  echo "$want" > "$stamp"
  echo "build.sh: built $name in $(( $(date +%s) - start ))s" >&2
  echo "$bin"
}

build portico-conformance "$(cd "$here" && echo *.go)" "test -c" .
build echo-basic "" build sigs.k8s.io/gateway-api/conformance/echo-basic
build conformance-dns "dnsserver/main.go" build ./dnsserver
