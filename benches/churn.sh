#!/usr/bin/env bash
# Churn under load with the release binary against the real kube-apiserver (scripts/apiserver.sh):
# wrk keeps CONNECTIONS (1,000) keep-alive connections busy through the proxy for DURATION (60 s),
# first with no change, then while RATE (100) changes per second arrive (unrelated Ingresses
# created, updated and deleted, Services changed, EndpointSlices rewritten, the served
# Service's second endpoint leaving and rejoining the ready set), with WEBSOCKETS (200)
# WebSocket connections open throughout. Prints both runs' requests/s, p50, p99 and failures,
# the upstream connections opened, and how many WebSockets survived; first for a control run
# (as many writes, to ConfigMaps the controller does not watch: the API server's own share of
# this machine), then for the changes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || bash scripts/setup.sh
bash scripts/apiserver.sh ensure
cargo build --release -q -p ingress-cli
for control in 1 0; do
  FERRY_CHURN_CONTROL=$control FERRY_CONTROLLER_BIN="$PWD/target/release/ingress-controller" \
  FERRY_CHURN_SECONDS="${DURATION:-60}" FERRY_CHURN_CONNECTIONS="${CONNECTIONS:-1000}" \
  FERRY_CHURN_RATE="${RATE:-100}" FERRY_CHURN_WEBSOCKETS="${WEBSOCKETS:-200}" \
    cargo test -q -p ingress-cli --test churn -- --exact churn_under_load_fails_nothing --nocapture 2>&1 \
    | grep -E "churn|quiet|failed|panicked" || true
done
