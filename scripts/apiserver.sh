#!/usr/bin/env bash
# A real kube-apiserver + etcd on loopback for the Kubernetes tests.
#
#   scripts/apiserver.sh build   build kube-apiserver 1.20 from Debian's source package, once
#                                (cached under ~/.cache/ferry/kube-apiserver)
#   scripts/apiserver.sh start   start etcd + kube-apiserver on 127.0.0.1, write env to $STATE/env
#   scripts/apiserver.sh ensure  start unless already running and healthy (idempotent, locked:
#                                concurrent callers wait for one start); what the tests call
#   scripts/apiserver.sh stop    stop both and remove their data
#   scripts/apiserver.sh restart-apiserver   restart kube-apiserver alone (etcd keeps the data)
#   scripts/apiserver.sh stop-apiserver | start-apiserver   the two halves of that
#
# Several instances can run side by side: each has its own $FERRY_APISERVER_STATE and ports
# ($FERRY_ETCD_PORT, $FERRY_ETCD_PEER_PORT, $FERRY_APISERVER_PORT). Tests that restart the API
# server use their own instance so they never disturb the shared one.
#
# After `start`, $STATE/env (default /tmp/ferry-apiserver/env) holds:
#   FERRY_APISERVER_URL, FERRY_APISERVER_CA, FERRY_ADMIN_TOKEN, FERRY_CONTROLLER_TOKEN,
#   FERRY_CONTROLLER_USER, FERRY_KUBECONFIG, FERRY_ETCD_URL
set -euo pipefail

CACHE="${FERRY_CACHE:-$HOME/.cache/ferry}"
BIN="$CACHE/kube-apiserver"
STATE="${FERRY_APISERVER_STATE:-/tmp/ferry-apiserver}"
ETCD_PORT="${FERRY_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${FERRY_ETCD_PEER_PORT:-23800}"
API_PORT="${FERRY_APISERVER_PORT:-26443}"
# Extra kube-apiserver flags, word-split (e.g. a test's own instance with a small watch cache).
FERRY_APISERVER_EXTRA_FLAGS="${FERRY_APISERVER_EXTRA_FLAGS:-}"

log() { echo "apiserver.sh: $*" >&2; }

APT_DIR="${APT_DIR:-/etc/apt}"

# Whether apt already knows where source packages come from.
have_deb_src() {
  grep -Eqs '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' \
    "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.list "$APT_DIR"/sources.list.d/*.sources
}

# The deb822 stanzas of the machine's binary sources (`Types: deb`), as deb-src stanzas.
deb_src_stanzas() {
  local f
  for f in "$APT_DIR"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
      {
        n = split($0, line, "\n"); deb = 0; out = ""
        for (i = 1; i <= n; i++) {
          if (line[i] ~ /^Types:/) {
            if (line[i] ~ /^Types:(.*[ \t])?deb([ \t].*)?$/) deb = 1
            line[i] = "Types: deb-src"
          }
          out = out line[i] "\n"
        }
        if (deb) printf "%s\n", out
      }' "$f"
  done
}

# The one-line binary sources (`deb URI suite components`), as deb-src lines.
deb_src_lines() {
  # Either file may be missing (Debian 12 has only deb822 `.sources`): not an error.
  local f
  for f in "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$f"
  done
}

build() {
  if [ -x "$BIN" ]; then return 0; fi
  mkdir -p "$CACHE"
  exec 8>"$CACHE/build.lock"
  flock 8
  if [ -x "$BIN" ]; then return 0; fi
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! have_deb_src; then
    # The source packages come from wherever this machine's apt gets its binary ones.
    local stanzas lines
    stanzas=$(deb_src_stanzas)
    lines=$(deb_src_lines)
    if [ -z "$stanzas$lines" ]; then
      log "no apt source to derive a deb-src entry from (see $APT_DIR)"; return 1
    fi
    [ -z "$stanzas" ] || printf '%s\n' "$stanzas" | $SUDO tee "$APT_DIR/sources.list.d/ferry-src.sources" >/dev/null
    [ -z "$lines" ] || printf '%s\n' "$lines" | $SUDO tee "$APT_DIR/sources.list.d/ferry-src.list" >/dev/null
    $SUDO apt-get update -qq
  fi
  command -v go >/dev/null && command -v etcd >/dev/null || \
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server golang-go dpkg-dev rsync jq >/dev/null
  local src="$CACHE/src"
  mkdir -p "$src"
  if ! ls -d "$src"/kubernetes-*/ >/dev/null 2>&1; then
    log "fetching Debian's kubernetes source package"
    (cd "$src" && apt-get source -qq kubernetes >/dev/null)
  fi
  local tree
  tree=$(ls -d "$src"/kubernetes-*/ | head -1)
  log "building kube-apiserver in $tree (about 6 minutes on 2 cores)"
  (
    cd "$tree"
    mkdir -p .go/src/k8s.io
    [ -e .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
    GOPATH="$PWD/.go" CGO_ENABLED=0 GOFLAGS=-mod=vendor make WHAT=cmd/kube-apiserver >/dev/null
  )
  install -m 0755 "$tree/_output/local/bin/linux/amd64/kube-apiserver" "$BIN"
  # The source tree and its build output take about 2 GB that nothing reads again; a clean CI
  # machine needs that room for the Rust build.
  rm -rf "$src"
  log "cached $BIN"
}

start() {
  build
  stop >/dev/null 2>&1 || true
  mkdir -p "$STATE"
  local admin_token controller_token
  admin_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  controller_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # The controller authenticates as the ingress-ferry ServiceAccount's user, so the RBAC bindings
  # in deploy/ (subjects: ServiceAccount ingress-ferry/ingress-ferry) apply to it.
  local controller_user="system:serviceaccount:ingress-ferry:ingress-ferry"
  cat >"$STATE/tokens.csv" <<TOK
$admin_token,admin,admin,system:masters
$controller_token,$controller_user,ferry-controller,"system:serviceaccounts,system:serviceaccounts:ingress-ferry,system:authenticated"
TOK
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$STATE/serving.key" -out "$STATE/serving.crt" 2>/dev/null
  openssl genrsa -out "$STATE/sa.key" 2048 2>/dev/null
  openssl rsa -in "$STATE/sa.key" -pubout -out "$STATE/sa.pub" 2>/dev/null

  etcd --name ferry-test --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "ferry-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    >"$STATE/etcd.log" 2>&1 8>&- 9>&- &
  echo $! >"$STATE/etcd.pid"

  start_apiserver

  cat >"$STATE/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ferry-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $STATE/serving.crt
users:
- name: admin
  user:
    token: $admin_token
contexts:
- name: ferry-test
  context: {cluster: ferry-test, user: admin, namespace: default}
current-context: ferry-test
KC
  cat >"$STATE/env" <<ENV
FERRY_APISERVER_URL=https://127.0.0.1:$API_PORT
FERRY_APISERVER_CA=$STATE/serving.crt
FERRY_ADMIN_TOKEN=$admin_token
FERRY_CONTROLLER_TOKEN=$controller_token
FERRY_CONTROLLER_USER=$controller_user
FERRY_KUBECONFIG=$STATE/kubeconfig
FERRY_ETCD_URL=http://127.0.0.1:$ETCD_PORT
ENV
  log "ready: https://127.0.0.1:$API_PORT (env in $STATE/env)"
}

# Separate so tests can restart the API server alone (etcd keeps the data).
start_apiserver() {
  "$BIN" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$API_PORT" --insecure-port 0 \
    --tls-cert-file "$STATE/serving.crt" --tls-private-key-file "$STATE/serving.key" \
    --token-auth-file "$STATE/tokens.csv" --authorization-mode RBAC \
    --service-account-key-file "$STATE/sa.pub" --service-account-signing-key-file "$STATE/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 --advertise-address 127.0.0.1 \
    --enable-priority-and-fairness=false \
    $FERRY_APISERVER_EXTRA_FLAGS >>"$STATE/apiserver.log" 2>&1 8>&- 9>&- &
  local pid=$!
  echo $pid >"$STATE/apiserver.pid"
  for _ in $(seq 1 120); do
    # Our process must be the one answering (not a predecessor still holding the port).
    kill -0 "$pid" 2>/dev/null || break
    if curl -sfk "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 || \
       curl -sfk -H "Authorization: Bearer $(cut -d, -f1 "$STATE/tokens.csv" | head -1)" \
         "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  log "kube-apiserver did not become ready; last log lines:"
  tail -20 "$STATE/apiserver.log" >&2
  return 1
}

healthy() {
  [ -f "$STATE/env" ] || return 1
  local url token ca
  url=$(sed -n 's/^FERRY_APISERVER_URL=//p' "$STATE/env")
  token=$(sed -n 's/^FERRY_ADMIN_TOKEN=//p' "$STATE/env")
  ca=$(sed -n 's/^FERRY_APISERVER_CA=//p' "$STATE/env")
  curl -sf --max-time 5 --cacert "$ca" -H "Authorization: Bearer $token" "$url/readyz" >/dev/null 2>&1
}

ensure() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock 9
  if healthy; then return 0; fi
  start
}

# Stops a process by pid file: TERM, then KILL if it lingers (kube-apiserver's graceful
# shutdown can wait on long-running watches), and waits until it is gone.
stop_pid() {
  local file=$1 patience=${2:-50} pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  # A stale pid file (e.g. after a reboot) may name someone else's process: only ours die.
  case "$(ps -p "$pid" -o comm= 2>/dev/null)" in
    etcd|kube-apiserver) ;;
    *) rm -f "$file"; return 0 ;;
  esac
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$patience"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$file"
}

stop_apiserver() {
  # Two seconds of grace: open watches would hold a graceful shutdown for much longer.
  stop_pid "$STATE/apiserver.pid" 20
}

stop() {
  stop_apiserver
  stop_pid "$STATE/etcd.pid"
  rm -rf "$STATE"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  ensure) ensure ;;
  stop) stop ;;
  restart-apiserver) stop_apiserver; start_apiserver ;;
  stop-apiserver) stop_apiserver ;;
  start-apiserver) start_apiserver ;;
  *) echo "usage: $0 build|start|ensure|stop|restart-apiserver|stop-apiserver|start-apiserver" >&2; exit 2 ;;
esac
