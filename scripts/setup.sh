#!/usr/bin/env bash
# One-time machine set-up: the Debian packages the build and the tests need.
# Idempotent: installs only what is missing. Run as root (or with sudo).
set -euo pipefail

packages=(cmake pkg-config libssl-dev clang curl jq openssl bc)
# The Kubernetes tests need etcd and a kube-apiserver built from Debian's source package.
packages+=(etcd-server golang-go dpkg-dev rsync)
# The proxy benchmark compares against nginx under wrk load (h2load for its gRPC shape).
packages+=(nginx-light wrk nghttp2-client)
# The metrics test scrapes the proxy with a real Prometheus and runs ingress-nginx's dashboard
# queries on it.
packages+=(prometheus)

missing=()
# The deploy/ and seed-tutorial tests drive kubectl. Any kubectl on PATH will do; otherwise
# Debian's (1.20, the same version as the test API server).
command -v kubectl >/dev/null || packages+=(kubernetes-client)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
