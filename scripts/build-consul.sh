#!/usr/bin/env bash
# Build a Consul binary from the Go module proxy, once per machine.
#
# Consul's root go.mod has `replace` directives for five sub-modules, so
# `go install github.com/hashicorp/consul@vX` is refused. We download the module,
# copy it to a writable temp dir, drop those replaces (the published sub-module
# versions are used instead) and build the root package.
#
# Prints the path of the binary on stdout. Cached under $MICRO_CACHE_DIR
# (default ~/.cache/micro), keyed by version; a second run does not rebuild.
set -euo pipefail

version="${CONSUL_VERSION:-v1.22.6}"
cache="${MICRO_CACHE_DIR:-$HOME/.cache/micro}"
out="$cache/consul-$version/consul"

if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build-consul: go is not installed" >&2; exit 1; }
mkdir -p "$cache/consul-$version"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

echo "build-consul: downloading github.com/hashicorp/consul@$version" >&2
dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/consul@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -n "$dir" ] && [ -d "$dir" ] || { echo "build-consul: module download failed" >&2; exit 1; }

cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
for m in api sdk proto-public envoyextensions troubleshoot; do
  go mod edit -dropreplace="github.com/hashicorp/consul/$m"
done

echo "build-consul: compiling (several minutes on 2 cores)" >&2
# The checksum database has no records for Consul's sub-modules (they are only
# ever consumed through `replace` upstream), so skip it for that path only.
GONOSUMDB="github.com/hashicorp/consul${GONOSUMDB:+,$GONOSUMDB}" \
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" . >&2
mv "$out.tmp" "$out"
echo "$out"
