#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing (etcd,
# protoc), builds the real servers and peers the tests use (Consul and the go-micro
# v4/v5 programs, cached per machine under ~/.cache/micro), then runs every test.
# Tests start and stop their servers themselves, on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_deps
export CARGO_TERM_COLOR=never

log "building Consul (cached after the first run)"
MICRO_CONSUL_BIN="$(bash scripts/build-consul.sh)"
export MICRO_CONSUL_BIN

log "building the go-micro peers (cached after the first run)"
peers="$(bash scripts/build-go-peers.sh)"
MICRO_GO_PEERS_V4="$(printf '%s\n' "$peers" | sed -n 's/^v4=//p')"
MICRO_GO_PEERS_V5="$(printf '%s\n' "$peers" | sed -n 's/^v5=//p')"
export MICRO_GO_PEERS_V4 MICRO_GO_PEERS_V5

log "building and running the test suite"
cargo test --workspace --all-features --no-fail-fast
