#!/usr/bin/env bash
# Propagation latency through the proxy with the release binary: API write acknowledged → first
# request routed, for Ingress create/update/delete, Service create, Secret update, EndpointSlice
# updates (alone, and right after an Ingress change), against the real kube-apiserver
# (scripts/apiserver.sh), with 1,000 unrelated Ingresses present; SCALE=1 gives issue 15's size
# (10,000 Ingresses × 10 paths, 10,000 Services and EndpointSlices, 1,000 TLS Secrets; writing
# them takes minutes) and ROUNDS=N multiplies the rounds of each change; STATUS=1 has the
# controller write every Ingress's status meanwhile (as on a first start after ingress-nginx).
# Prints p50/p99 per kind, the controller's start-up time and its RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/apiserver.sh ensure
cargo build --release -q -p ingress-cli
if [ "${SCALE:-0}" = 1 ]; then
  export FERRY_PROPAGATION_INGRESSES="${N:-10000}" FERRY_PROPAGATION_PATHS=10
fi
export FERRY_PROPAGATION_ROUNDS="${ROUNDS:-1}" FERRY_PROPAGATION_STATUS="${STATUS:-0}"
FERRY_CONTROLLER_BIN="$PWD/target/release/ingress-controller" \
  cargo test -q -p ingress-cli --test propagation -- --exact propagation_latency_through_the_proxy --nocapture 2>&1 \
  | grep -E "propagation|setup|metrics once|status:|n="
