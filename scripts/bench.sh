#!/usr/bin/env bash
# Runs the side-by-side benchmark of micro and go-micro (v5 and v4) on this
# machine: installs what is missing (etcd, protoc), builds the helloworld example
# server and the go-micro peer programs (cached under ~/.cache/micro), then runs
# `cargo bench -p micro-tests --bench compare`, which starts etcd and every
# server and load generator as separate processes on loopback and prints the
# tables and one `target ... met|missed` line per goal.
#
# Settings (environment): BENCH_SECS (seconds per measured run, default 3),
# BENCH_ROUNDS (default 2), BENCH_CALLERS (default 1,16,64), BENCH_SUBSCRIBERS
# (default 1,8), BENCH_PUBLISHERS (default 32), BENCH_DISCOVERY_ROUNDS (default
# 100), BENCH_ONLY (unary,bidi,broker,discovery,tls), BENCH_GO (v5,v4).
# With the defaults a run takes about five minutes on 2 cores once built.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_deps
export CARGO_TERM_COLOR=never

log "building the go-micro peers (cached after the first run)"
peers="$(bash scripts/build-go-peers.sh)"
MICRO_GO_PEERS_V4="$(printf '%s\n' "$peers" | sed -n 's/^v4=//p')"
MICRO_GO_PEERS_V5="$(printf '%s\n' "$peers" | sed -n 's/^v5=//p')"
export MICRO_GO_PEERS_V4 MICRO_GO_PEERS_V5

log "building the helloworld example server (profile dist: release with fat LTO), with and without TLS"
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
# The TLS workload's server has the tls feature; the others are built without it,
# as a service that does not use TLS is (its code is not even compiled in).
cargo build --profile dist -p examples --features etcd,consul,tls --bin helloworld
cp "$target_dir/dist/helloworld" "$target_dir/dist/helloworld-tls"
cargo build --profile dist -p examples --features etcd,consul --bin helloworld
MICRO_BENCH_HELLOWORLD="$target_dir/dist/helloworld"
MICRO_BENCH_HELLOWORLD_TLS="$target_dir/dist/helloworld-tls"
export MICRO_BENCH_HELLOWORLD MICRO_BENCH_HELLOWORLD_TLS

log "running the comparison"
cargo bench -p micro-tests --bench compare
