#!/usr/bin/env bash
# Build the go-micro v4 and v5 peer programs used by the interop tests.
#
# usage: scripts/build-go-peers.sh [v4] [v5]      (default: both)
#
# Each Go module under tests/interop/<version>/ builds five programs (server,
# client, publisher, subscriber, and bench for scripts/bench.sh) into
#   ${MICRO_CACHE_DIR:-$HOME/.cache/micro}/go-peers/<version>-<hash>/
# where <hash> covers the module's go.mod, go.sum, Go sources and the Go
# version. A cached build is reused; a changed source gives a new directory
# (older ones of that version are removed).
#
# stdout: one "<version>=<bin dir>" line per version; progress on stderr.
# Needs only Go and the Go module proxy (modules are fetched by `go build`
# and checked against the committed go.sum).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MICRO_CACHE_DIR:-$HOME/.cache/micro}/go-peers"
programs=(server client publisher subscriber bench)
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(v4 v5)

log() { echo "build-go-peers: $*" >&2; }

command -v go >/dev/null || { log "go is not installed"; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
mkdir -p "$cache"

# Serialise concurrent runs (parallel test binaries may all ask at once).
exec 9>"$cache/.lock"
if command -v flock >/dev/null; then flock 9; fi

source_hash() { # module dir
  local dir=$1
  {
    go version
    (cd "$dir" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print \
      | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-16
}

for v in "${versions[@]}"; do
  case "$v" in v4 | v5) ;; *) log "unknown version '$v' (want v4 or v5)"; exit 2 ;; esac
  src="$root/tests/interop/$v"
  [ -f "$src/go.mod" ] || { log "missing $src/go.mod"; exit 1; }
  out="$cache/$v-$(source_hash "$src")"
  if [ -f "$out/.complete" ]; then
    log "$v: cached in $out"
  else
    log "$v: building into $out (a cold build takes one to two minutes on 2 cores)"
    start=$SECONDS
    tmp="$(mktemp -d "$cache/.tmp-$v-XXXXXX")"
    chmod 755 "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$src" && go build -trimpath -o "$tmp/" "${programs[@]/#/./cmd/}") >&2
    for p in "${programs[@]}"; do
      [ -x "$tmp/$p" ] || { log "$v: $p was not built"; exit 1; }
    done
    touch "$tmp/.complete"
    rm -rf "$out"
    mv "$tmp" "$out"
    trap - EXIT
    for old in "$cache/$v"-*; do
      [ "$old" = "$out" ] || rm -rf "$old"
    done
    log "$v: built in $((SECONDS - start)) s"
  fi
  echo "$v=$out"
done
