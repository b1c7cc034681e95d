#!/usr/bin/env bash
# Profiles the hot paths of a unary call (client and server) and of an HTTP broker
# delivery (publisher and subscriber) with deterministic tools, on loopback, against
# a local etcd:
#   * instructions per operation: valgrind callgrind;
#   * allocations per operation and their sites: valgrind DHAT;
#   * syscalls per call of the server: strace -c -f (1 and 16 callers).
# Costs per operation are differences between a run of W operations and one of
# W+N (or a profile zeroed after W), so start-up cancels out.
#
# usage: scripts/profile.sh            (PROFILE_CALLS=N, default 3000)
# Output: summaries on stdout; raw profiles in the directory printed at the end
# (open callgrind files with callgrind_annotate or kcachegrind).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_deps
apt_install valgrind strace
export CARGO_TERM_COLOR=never
N="${PROFILE_CALLS:-3000}"
W=500

log "building the helloworld example (profile dist) and the compare bench"
cargo build --profile dist -p examples --features etcd,consul --bin helloworld >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
HELLO="$target_dir/dist/helloworld"
CMP="$(cargo bench -p micro-tests --bench compare --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*compare-[^)]*\)).*/\1/p' | tail -n1)"
[ -x "$CMP" ] || { log "compare bench binary not found"; exit 1; }

out="$(mktemp -d /tmp/micro-profile-XXXXXX)"
pids=()
cleanup() {
  # Programs first (they deregister from etcd as they stop), etcd (pids[0]) last.
  local i
  for ((i = ${#pids[@]} - 1; i >= 1; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  sleep 1
  [ "${#pids[@]}" -gt 0 ] && kill -TERM "${pids[0]}" 2>/dev/null || true
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # file pattern seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  log "timed out waiting for '$2' in $1"; return 1
}
wait_exit() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

pc="$(free_port)"; pp="$(free_port)"
etcd --name p --data-dir "$out/etcd" --listen-client-urls "http://127.0.0.1:$pc" \
  --advertise-client-urls "http://127.0.0.1:$pc" --listen-peer-urls "http://127.0.0.1:$pp" \
  --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "p=http://127.0.0.1:$pp" \
  --initial-cluster-state new --logger zap --log-outputs stderr --log-level warn 2>"$out/etcd.log" &
pids+=($!)
export MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS="127.0.0.1:$pc" MICRO_BROKER_ADDRESS=127.0.0.1:0
export MICRO_SERVER_ADDRESS=127.0.0.1:0 RUST_LOG=warn
for _ in $(seq 100); do
  python3 -c "import urllib.request,sys; sys.exit(b'true' not in urllib.request.urlopen('http://127.0.0.1:$pc/health', timeout=1).read())" 2>/dev/null && break
  sleep 0.1
done

# server NAME [wrapper...]: starts helloworld as service NAME, waits for READY.
server() {
  local name=$1; shift
  MICRO_SERVER_NAME="$name" "$@" "$HELLO" >"$out/$name.out" 2>"$out/$name.err" &
  spid=$!; pids+=("$spid")
  wait_line "$out/$name.out" READY 120
}
call() { "$CMP" call --service "$1" --callers "${3:-1}" --calls "$2" >>"$out/calls.log"; }
section() { printf '\n== %s\n' "$*"; }

section "unary Helloworld.Call, server: instructions per call (callgrind, zeroed after $W calls)"
server prof.cg valgrind --tool=callgrind --callgrind-out-file="$out/cg.server.%p"
call prof.cg "$W"; callgrind_control -z "$spid" >/dev/null
call prof.cg "$N"; callgrind_control -d "$spid" >/dev/null
kill -TERM "$spid"; wait_exit "$spid" 60
python3 scripts/profile/cgdiff.py - "$(ls "$out"/cg.server.*.1)" "$N" 25

server prof.native
section "unary Helloworld.Call, client: instructions per call (callgrind, $W vs $((W + N)) calls)"
for n in "$W" "$((W + N))"; do
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.client.$n" \
    "$CMP" call --service prof.native --calls "$n" >>"$out/calls.log" 2>>"$out/valgrind.log"
done
python3 scripts/profile/cgdiff.py "$out/cg.client.$W" "$out/cg.client.$((W + N))" "$N" 25

section "unary Helloworld.Call, client: allocations per call (DHAT)"
for n in "$W" "$((W + N))"; do
  valgrind --tool=dhat --num-callers=50 --dhat-out-file="$out/dh.client.$n" \
    "$CMP" call --service prof.native --calls "$n" >>"$out/calls.log" 2>>"$out/valgrind.log"
done
python3 scripts/profile/dhdiff.py "$out/dh.client.$W" "$out/dh.client.$((W + N))" "$N" 30

section "unary Helloworld.Call, server: syscalls per call (strace -c -f; 1 caller, then 16)"
for callers in 1 16; do
  strace -c -f -p "$spid" -o "$out/strace.server.$callers" 2>/dev/null &
  st=$!; sleep 1
  call prof.native "$N" "$callers"
  kill -INT "$st"; wait "$st" 2>/dev/null || true
  echo "-- $callers caller(s): calls per Helloworld.Call"
  awk -v n="$N" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { printf "   %-14s %6.3f\n", $NF, $4 / n }' "$out/strace.server.$callers"
done
kill -TERM "$spid"; wait_exit "$spid" 30

section "unary Helloworld.Call, server: allocations per call (DHAT)"
for n in "$W" "$((W + N))"; do
  server "prof.dhat$n" valgrind --tool=dhat --num-callers=50 --dhat-out-file="$out/dh.server.$n"
  call "prof.dhat$n" "$n"
  kill -TERM "$spid"; wait_exit "$spid" 120
done
python3 scripts/profile/dhdiff.py "$out/dh.server.$W" "$out/dh.server.$((W + N))" "$N" 30

# publish TOPIC N [wrapper...]: publishes N events (one at a time) to one
# subscriber and waits for the publisher to finish.
publish() {
  local topic=$1 n=$2; shift 2
  # Truncate now: the previous run's "published" line must not satisfy the wait
  # below before the new process has opened (and truncated) the file itself.
  : >"$out/pub.out"
  "$@" "$CMP" publish --topic "$topic" --subscribers 1 --seconds 3600 --concurrency 1 \
    --max_events "$n" >"$out/pub.out" 2>>"$out/valgrind.log" &
  local p=$!; pids+=("$p")
  wait_line "$out/pub.out" published 300
  kill -TERM "$p"; wait_exit "$p" 120
}
# subscriber TOPIC [wrapper...]
subscriber() {
  local topic=$1; shift
  "$@" "$CMP" subscribe --topic "$topic" >"$out/sub.$topic.out" 2>>"$out/valgrind.log" &
  spid=$!; pids+=("$spid")
  wait_line "$out/sub.$topic.out" READY 120
}

section "HTTP broker, subscriber: instructions per delivered event (callgrind, zeroed after $W)"
subscriber prof.t1 valgrind --tool=callgrind --callgrind-out-file="$out/cg.subscriber.%p"
publish prof.t1 "$W"; callgrind_control -z "$spid" >/dev/null
publish prof.t1 "$N"; callgrind_control -d "$spid" >/dev/null
kill -TERM "$spid"; wait_exit "$spid" 60
python3 scripts/profile/cgdiff.py - "$(ls "$out"/cg.subscriber.*.1)" "$N" 25

section "HTTP broker, subscriber: allocations per delivered event (DHAT)"
for n in "$W" "$((W + N))"; do
  subscriber "prof.t2x$n" valgrind --tool=dhat --num-callers=50 --dhat-out-file="$out/dh.subscriber.$n"
  publish "prof.t2x$n" "$n"
  kill -TERM "$spid"; wait_exit "$spid" 120
done
python3 scripts/profile/dhdiff.py "$out/dh.subscriber.$W" "$out/dh.subscriber.$((W + N))" "$N" 20

subscriber prof.t3
section "HTTP broker, publisher: instructions per published event, one subscriber (callgrind)"
for n in "$W" "$((W + N))"; do
  publish prof.t3 "$n" valgrind --tool=callgrind --callgrind-out-file="$out/cg.publisher.$n"
done
python3 scripts/profile/cgdiff.py "$out/cg.publisher.$W" "$out/cg.publisher.$((W + N))" "$N" 25
section "HTTP broker, publisher: allocations per published event (DHAT)"
for n in "$W" "$((W + N))"; do
  publish prof.t3 "$n" valgrind --tool=dhat --num-callers=50 --dhat-out-file="$out/dh.publisher.$n"
done
python3 scripts/profile/dhdiff.py "$out/dh.publisher.$W" "$out/dh.publisher.$((W + N))" "$N" 20

printf '\nraw profiles: %s\n' "$out"
