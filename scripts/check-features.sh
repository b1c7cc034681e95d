#!/usr/bin/env bash
# Builds the `micro` crate with no plugin feature, with each plugin feature alone
# and with all of them, so that a feature that only compiles next to another one
# is caught (the way tower checks each of its features). Also checks that the
# demo's dependency tree holds none of the plugins' heavy dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_deps
export CARGO_TERM_COLOR=never

features=$(sed -n '/^\[features\]/,/^\[/p' micro/Cargo.toml | sed -n 's/^\([a-z0-9_-]*\) *=.*/\1/p' | grep -v '^default$')
log "micro features: $(echo $features)"
log "cargo build -p micro --no-default-features"
cargo build -q -p micro --no-default-features
for f in $features; do
  log "cargo build -p micro --no-default-features --features $f"
  cargo build -q -p micro --no-default-features --features "$f"
done
log "cargo build -p micro --all-features"
cargo build -q -p micro --all-features

# The demo (examples without features) must not compile a plugin.
heavy=$(cargo tree -p examples -e normal --prefix none 2>/dev/null \
  | sed 's/ .*//' | grep -xE 'etcd-client|tonic|reqwest|ring|rustls|micro-etcd|micro-consul' | sort -u || true)
if [ -n "$heavy" ]; then
  log "the demo's dependency tree holds plugin dependencies: $(echo $heavy)"
  exit 1
fi
log "features build alone and together; the demo compiles no plugin"
