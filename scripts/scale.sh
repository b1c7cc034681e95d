#!/usr/bin/env bash
# Runs the scale benchmark (docs/scale.md): how micro's cost grows from 10 to
# 10 000 nodes on real etcd (one member and three) and Consul (a server agent
# and a client agent per 1 000 nodes), next to go-micro v5. Installs what is
# missing (etcd, protoc, gnuplot), builds Consul and the go-micro peers (cached
# under ~/.cache/micro), then runs
# `cargo bench -p micro-tests --bench scale`, which prints tables and one
# `target ... met|missed` line per goal, and writes report.txt, data.tsv and
# PNG plots to $SCALE_OUT.
#
# Settings (environment):
#   SCALE_MAX          largest N: 1000 (the short form, default) or 10000 (full)
#   SCALE_BACKENDS     registries, comma separated (default etcd-1,etcd-3,consul)
#   SCALE_PROCS        registrant processes holding the nodes (default 4)
#   SCALE_WINDOW_SECS  steady-state window (default 9)
#   SCALE_CHURN_SECS   churn window (default 10)
#   SCALE_GO           v5 (default) or none: skip go-micro
#   SCALE_OUT          output directory (default docs/scale)
# The short form took 456 s on 2 cores once everything was built (the bench
# 424 s); a fresh machine first spends about 8.5 minutes installing and building
# (Consul from source is most of it), cached for later runs and for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_deps
export CARGO_TERM_COLOR=never
export SCALE_OUT="${SCALE_OUT:-$PWD/docs/scale}"
mkdir -p "$SCALE_OUT"

if [[ ",${SCALE_BACKENDS:-consul}," == *,consul,* ]]; then
  log "building Consul (cached after the first run)"
  MICRO_CONSUL_BIN="$(bash scripts/build-consul.sh | tail -1)"
  export MICRO_CONSUL_BIN
fi
if [ "${SCALE_GO:-v5}" != none ]; then
  log "building the go-micro v5 peers (cached after the first run)"
  MICRO_GO_PEERS_V5="$(bash scripts/build-go-peers.sh v5 | sed -n 's/^v5=//p')"
  export MICRO_GO_PEERS_V5
fi

log "building the scale bench and its registrant (bench profile)"
cargo bench -p micro-tests --bench scale --no-run

log "running (SCALE_MAX=${SCALE_MAX:-1000}); output in $SCALE_OUT"
start=$SECONDS
cargo bench -p micro-tests --bench scale
log "scale bench took $((SECONDS - start)) s"
