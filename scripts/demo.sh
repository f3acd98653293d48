#!/usr/bin/env bash
# The README's first command: runs the controller in standalone mode on examples/demo/ (the seed
# tutorial's demo app and TLS webapp), with two local echo backends standing in for their pods.
#
#   http  127.0.0.1:30080   https 127.0.0.1:30443   admin 127.0.0.1:10254
#
# Then, from another terminal:
#   curl -H 'Host: demo.example.com' http://127.0.0.1:30080/
#   curl http://127.0.0.1:30080/                         # → default backend - 404
#   curl -k --resolve webapp.example.com:30443:127.0.0.1 https://webapp.example.com:30443/
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build -q -p ingress-cli -p ferry-examples --examples --bins
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
target/debug/examples/echo_backend 127.0.0.1:8080 demo-app & pids+=($!)
target/debug/examples/echo_backend 127.0.0.1:8081 webapp & pids+=($!)
# The seed's Ingresses carry `kubernetes.io/ingress.class: "nginx"`: serve that class, as a
# drop-in replacement for ingress-nginx would.
target/debug/ingress-controller --manifests examples/demo --ingress-class nginx \
  --bind-address 127.0.0.1 --http-port 30080 --https-port 30443 --admin-port 10254 "$@" & pids+=($!)
wait "${pids[2]}"
