#!/usr/bin/env bash
# Ferry's TCP services vs Debian's nginx `stream` module, forwarding to the same local echo
# upstream: throughput and CPU per byte.
#
#   benches/stream/run.sh                 # 7 rounds of 4 s, both proxies loaded at once
#   MODE=alternate benches/stream/run.sh  # each proxy alone in turn (order flips every round)
#   ROUNDS=11 DURATION=5 CONNS=16 CHUNK=65536 benches/stream/run.sh
#
# Layout (2 cores), as benches/proxy/run.sh: both proxies pinned to core 0, one worker each
# (Ferry: one Pingora thread for its TCP services; nginx: one worker with `proxy_pass` in a
# `stream` server); the load generator and the echo upstream (both `bench_stream`, Rust,
# current-thread) share core 1. Each of CONNS connections writes CHUNK bytes and reads them
# back, for DURATION seconds. Reports MB/s through each proxy (each way) and CPU-seconds per
# GB, and ours/nginx ratios per round and their median. See benches/proxy/run.sh for why the
# default mode loads both proxies at once.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODE="${MODE:-concurrent}"
ROUNDS="${ROUNDS:-7}"
DURATION="${DURATION:-4}"
CONNS="${CONNS:-16}"
CHUNK="${CHUNK:-16384}"
PROXY_CORE="${PROXY_CORE:-0}"
LOAD_CORE="${LOAD_CORE:-1}"
UP_PORT=19080 NGINX_PORT=19081 FERRY_PORT=19082
WORK="$(mktemp -d /tmp/ferry-stream-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

command -v nginx >/dev/null || bash scripts/setup.sh
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
if [ ! -e "$STREAM_MODULE" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libnginx-mod-stream >/dev/null
fi

cargo build --release -q -p ingress-proxy --example bench_stream
BIN="target/release/examples/bench_stream"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
stream {
  # What ingress-nginx writes for a tcp-services entry, less its Lua balancer.
  server {
    listen 127.0.0.1:$NGINX_PORT;
    proxy_timeout 600s;
    proxy_next_upstream on;
    proxy_next_upstream_timeout 600s;
    proxy_next_upstream_tries 3;
    proxy_pass 127.0.0.1:$UP_PORT;
  }
}
CONF

taskset -c "$LOAD_CORE" "$BIN" echo "$UP_PORT" & PIDS+=($!)
taskset -c "$PROXY_CORE" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" & PIDS+=($!); NGINX_PID=$!
taskset -c "$PROXY_CORE" "$BIN" proxy "$FERRY_PORT" "127.0.0.1:$UP_PORT" & PIDS+=($!); FERRY_PID=$!

for port in $UP_PORT $NGINX_PORT $FERRY_PORT; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

ticks() { # CPU ticks (utime+stime) of a process and its children
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$total"
}

load() { # port seconds → "MB/s failed"
  taskset -c "$LOAD_CORE" "$BIN" load "$1" "$CONNS" "$2" "$CHUNK"
}

summarize() { # "MB/s failed" ticks_before ticks_after seconds → "MB/s cpu_s_per_GB"
  local mbs failed
  read -r mbs failed <<<"$1"
  [ "$failed" = 0 ] || echo "$failed connections failed" >&2
  awk -v m="$mbs" -v a="$2" -v b="$3" -v hz="$(getconf CLK_TCK)" -v s="$4" \
    'BEGIN { printf "%s %.3f\n", m, (b - a) / hz / (m * s / 1000) }'
}

run() { # name port pid → "MB/s cpu_s_per_GB", the proxy alone
  local t0 t1 out
  load "$2" 1 >/dev/null
  t0=$(ticks "$3"); out=$(load "$2" "$DURATION"); t1=$(ticks "$3")
  summarize "$out" "$t0" "$t1" "$DURATION"
}

run_both() { # → two lines (nginx, ferry), both loaded at once
  local n0 n1 f0 f1
  load $NGINX_PORT 1 >/dev/null & load $FERRY_PORT 1 >/dev/null & wait
  n0=$(ticks "$NGINX_PID"); f0=$(ticks "$FERRY_PID")
  load $NGINX_PORT "$DURATION" >"$WORK/nginx.out" & load $FERRY_PORT "$DURATION" >"$WORK/ferry.out" & wait
  n1=$(ticks "$NGINX_PID"); f1=$(ticks "$FERRY_PID")
  summarize "$(cat "$WORK/nginx.out")" "$n0" "$n1" "$DURATION"
  summarize "$(cat "$WORK/ferry.out")" "$f0" "$f1" "$DURATION"
}

printf '%-6s %-8s %10s %12s\n' round proxy 'MB/s' 'CPU-s/GB'
: >"$WORK/ratios"
for round in $(seq 1 "$ROUNDS"); do
  if [ "$MODE" = concurrent ]; then
    { read -r N_MBS N_CPU; read -r F_MBS F_CPU; } < <(run_both)
  else
    if (( round % 2 )); then order="nginx ferry"; else order="ferry nginx"; fi
    for who in $order; do
      if [ "$who" = nginx ]; then read -r N_MBS N_CPU < <(run nginx $NGINX_PORT $NGINX_PID)
      else read -r F_MBS F_CPU < <(run ferry $FERRY_PORT $FERRY_PID); fi
    done
  fi
  printf '%-6s %-8s %10s %12s\n' "$round" nginx "$N_MBS" "$N_CPU"
  printf '%-6s %-8s %10s %12s\n' "$round" ferry "$F_MBS" "$F_CPU"
  awk -v fm="$F_MBS" -v nm="$N_MBS" -v fc="$F_CPU" -v nc="$N_CPU" \
    'BEGIN { printf "%.3f %.3f\n", fm/nm, fc/nc }' >>"$WORK/ratios"
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "per-round ratios ours/nginx (MB/s, CPU/GB):"
sed 's/^/  /' "$WORK/ratios"
printf 'median ratio ours/nginx: MB/s %.2fx, CPU/GB %.2fx\n' \
  "$(awk '{print $1}' "$WORK/ratios" | median)" "$(awk '{print $2}' "$WORK/ratios" | median)"
echo "(${MODE}: ${ROUNDS} rounds of ${DURATION}s per proxy, ${CONNS} connections echoing ${CHUNK}-byte chunks, proxy on core $PROXY_CORE, load + upstream on core $LOAD_CORE)"
