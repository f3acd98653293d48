#!/usr/bin/env bash
# Propagation latency through the proxy with the release binary: API write acknowledged → first
# request routed to the new backend, over 120 changes with 1,000 unrelated Ingresses present,
# against the real kube-apiserver (scripts/apiserver.sh). Prints p50/p99 per kind of change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/apiserver.sh ensure
cargo build --release -q -p ingress-cli
FERRY_CONTROLLER_BIN="$PWD/target/release/ingress-controller" \
  cargo test -q -p ingress-cli --test cluster -- --exact propagation_latency_through_the_proxy --nocapture 2>&1 \
  | grep -E "propagation|n=" | sed 's/debug build/release build/'
