#!/usr/bin/env bash
# RSS of the release controller across configuration changes against the real kube-apiserver
# (scripts/apiserver.sh): N Ingresses x 10 paths present (default 10,000, each with a Service
# and an EndpointSlice, one in ten with a TLS Secret), then ROUNDS rounds (default 3) of CHANGES
# changes (default 500) of each kind, requests through the proxy after each, and BATCH Ingresses
# (default 500) made, requested and deleted. Prints RSS after start, after each phase and round.
#   N=10000 ROUNDS=3 benches/steady/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/apiserver.sh ensure
cargo build --release -q -p ingress-cli
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
for which in one two; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$certs/$which.key" -out "$certs/$which.crt" -subj "/CN=$which.example.com" 2>/dev/null
done
FERRY_APISERVER_ENV="${FERRY_APISERVER_STATE:-/tmp/ferry-apiserver}/env" CERTS="$certs" \
  FERRY_CONTROLLER_BIN="$PWD/target/release/ingress-controller" python3 benches/steady/steady.py
