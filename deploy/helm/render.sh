#!/usr/bin/env bash
# deploy/*.yaml is the chart deploy/helm/portico rendered by helm with its
# default values, release "portico" in namespace portico-system, plus
# namespace.create=true (kubectl has no --create-namespace). One file per
# template, named as the template.
#
# Usage: render.sh           rewrite deploy/*.yaml (`make deploy`)
#        render.sh --check   fail, showing the diff, when deploy/ differs from
#                            the chart (`make deploy-check`)
# Env:   HELM (default: e2e/helm/build.sh's pinned helm)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
deploy="$repo/deploy"
helm="${HELM:-$("$repo/e2e/helm/build.sh")}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$helm" template portico "$here/portico" --namespace portico-system \
  --set namespace.create=true --output-dir "$tmp/helm" >/dev/null
mkdir "$tmp/deploy"
for f in "$tmp"/helm/portico/templates/*.yaml; do
  {
    echo "# Generated from the Helm chart deploy/helm/portico (default values) by"
    echo "# \`make deploy\`: edit the chart, not this file. \`make deploy-check\` fails"
    echo "# when they differ."
    grep -v '^# Source: ' "$f"
  } > "$tmp/deploy/$(basename "$f")"
done

if [[ "${1:-}" == "--check" ]]; then
  status=0
  for f in "$deploy"/*.yaml; do
    [[ -e "$tmp/deploy/$(basename "$f")" ]] || {
      echo "deploy/$(basename "$f") is not rendered by the chart: remove it, or add the template" >&2
      status=1
    }
  done
  for f in "$tmp"/deploy/*.yaml; do
    name="$(basename "$f")"
    if ! diff -u --label "deploy/$name" --label "chart: $name" "$deploy/$name" "$f" 2>/dev/null; then
      [[ -e "$deploy/$name" ]] || echo "deploy/$name is missing" >&2
      status=1
    fi
  done
  if (( status )); then
    echo "deploy/ differs from the chart deploy/helm/portico: run \`make deploy\`" >&2
  fi
  exit "$status"
fi

rm -f "$deploy"/*.yaml
cp "$tmp"/deploy/*.yaml "$deploy/"
echo "render.sh: wrote $(cd "$tmp/deploy" && echo *.yaml) into deploy/" >&2
