#!/usr/bin/env bash
# Runs the in-process demo on a fresh machine: installs what the build needs,
# builds, and runs examples/src/bin/demo.rs (a service registers, is called,
# streams, and stops with deregistration; nothing external is needed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_toolchains
# The demo uses only the memory registry: no etcd, no protoc.
cargo run -q -p examples --bin demo
