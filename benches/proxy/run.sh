#!/usr/bin/env bash
# Ferry's proxy vs Debian's nginx as reverse proxies to the same local upstream.
#
#   benches/proxy/run.sh                 # 7 rounds of 4 s, both proxies loaded at once
#   MODE=alternate benches/proxy/run.sh  # each proxy alone in turn (order flips every round)
#   ROUNDS=11 DURATION=5 CONNS=64 benches/proxy/run.sh
#   FERRY_WORK_STEALING=1 benches/proxy/run.sh   # Pingora's work-stealing runtime instead
#   BODY=1024 benches/proxy/run.sh       # POSTs with a 1024-byte body instead of bodyless GETs
#   SHAPE=rewrite benches/proxy/run.sh   # GET /api/x through the rewrite-target idiom
#                                        # (/api(/|$)(.*) → /$2) with a response header added
#   SHAPE=basic-auth benches/proxy/run.sh  # basic authentication (an apr1 htpasswd line)
#   SHAPE=hash benches/proxy/run.sh      # upstream-hash-by $request_uri over four upstream
#                                        # addresses (nginx: hash $request_uri consistent)
#   SHAPE=https-upstream benches/proxy/run.sh  # backend-protocol: HTTPS (TLS to the upstream,
#                                        # kept alive; nginx: proxy_pass https://, not verified)
#   SHAPE=grpc benches/proxy/run.sh      # gRPC unary calls (h2c from h2load, HTTP/2 to a gRPC
#                                        # upstream; nginx: grpc_pass); p50/p99 from h2load's log
#
# Layout (2 cores): both proxies pinned to core 0 (taskset), one worker each; the wrk load
# generators and the upstream (nginx returning a fixed 13-byte body) share core 1. Keep-alive on
# both sides (wrk → proxy, proxy → upstream). Reports requests/s, p50/p99 latency and
# CPU-seconds per request of each proxy process (utime+stime from /proc/PID/stat), and
# ours/nginx ratios per round and their median over the rounds.
#
# Why `concurrent` is the default: this machine is shared, and other tenants change its speed
# from one second to the next (nginx alone ranged over 1.5× between runs). Loaded at the same
# time on the same core, both proxies see the same machine, so the ratios hold still; the core
# is saturated and shared fairly, so req/s and CPU/request ratios say the same thing, and both
# proxies' latencies include waiting for the other. `alternate` gives each proxy the core to
# itself, at the price of noisier ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODE="${MODE:-concurrent}"
ROUNDS="${ROUNDS:-7}"
DURATION="${DURATION:-4}"
CONNS="${CONNS:-32}"
BODY="${BODY:-0}"
SHAPE="${SHAPE:-plain}"
PROXY_CORE="${PROXY_CORE:-0}"
LOAD_CORE="${LOAD_CORE:-1}"
UP_PORT=18080 NGINX_PORT=18081 FERRY_PORT=18082
WORK="$(mktemp -d /tmp/ferry-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

command -v nginx >/dev/null && command -v wrk >/dev/null && command -v h2load >/dev/null || bash scripts/setup.sh

cargo build --release -q -p ingress-proxy --example bench_proxy
FERRY_BIN="target/release/examples/bench_proxy"

nginx_conf() { # name, body of the http{} block
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1; proxy_temp_path $WORK/$1; fastcgi_temp_path $WORK/$1;
  uwsgi_temp_path $WORK/$1; scgi_temp_path $WORK/$1;
  keepalive_requests 1000000;
  $2
}
CONF
}

UP_LISTEN="listen 127.0.0.1:$UP_PORT;"
UP_LOCATION="location / { return 200 'hello, world\n'; }"
UP_SCHEME=http PROXY_LISTEN="listen 127.0.0.1:$NGINX_PORT;"
[ "$SHAPE" = hash ] && UP_LISTEN="listen 127.0.0.1:$UP_PORT; listen 127.0.0.2:$UP_PORT; listen 127.0.0.3:$UP_PORT; listen 127.0.0.4:$UP_PORT;"
if [ "$SHAPE" = https-upstream ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=upstream.bench \
    -keyout "$WORK/up.key" -out "$WORK/up.crt" 2>/dev/null
  chmod a+rx "$WORK" && chmod a+r "$WORK/up.key" "$WORK/up.crt"
  UP_LISTEN="listen 127.0.0.1:$UP_PORT ssl; ssl_certificate $WORK/up.crt; ssl_certificate_key $WORK/up.key;"
  UP_SCHEME=https
elif [ "$SHAPE" = grpc ]; then
  # A gRPC upstream in nginx: every call answered with an empty message and grpc-status 0 in
  # the trailers (nginx 1.22: h2c on a listen marked http2).
  mkdir -p "$WORK/grpc/echo.Echo"
  printf '\0\0\0\0\0' >"$WORK/grpc/echo.Echo/Call"
  chmod -R a+rX "$WORK"
  UP_LISTEN="listen 127.0.0.1:$UP_PORT http2;"
  UP_LOCATION="location / { root $WORK/grpc; default_type application/grpc; error_page 405 =200 \$uri;
    add_trailer grpc-status 0 always; }"
  PROXY_LISTEN="listen 127.0.0.1:$NGINX_PORT http2;"
fi
nginx_conf upstream "server { $UP_LISTEN $UP_LOCATION }"
PROXY_COMMON="proxy_http_version 1.1; proxy_set_header Connection '';
    proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Real-IP \$remote_addr; proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Request-ID \$request_id; proxy_buffering on;"
if [ "$SHAPE" = rewrite ]; then
  # What ingress-nginx writes for the idiom, and an added response header.
  LOCATION="location ~* \"^/api(/|\$)(.*)\" { rewrite \"(?i)/api(/|\$)(.*)\" /\$2 break;
    proxy_pass http://up; $PROXY_COMMON add_header X-Frame-Options DENY always; }"
  REQUEST_PATH=/api/x
elif [ "$SHAPE" = basic-auth ]; then
  # The same user and apr1 hash as the bench proxy's (examples/bench_proxy.rs).
  echo 'bench:$apr1$benchslt$xg8nhdNCXN8cv7mXxgHvB0' >"$WORK/htpasswd"
  chmod a+rx "$WORK" && chmod a+r "$WORK/htpasswd" # nginx's workers may run as another user
  LOCATION="location / { auth_basic bench; auth_basic_user_file $WORK/htpasswd;
    proxy_set_header Authorization ''; proxy_pass http://up; $PROXY_COMMON }"
  REQUEST_PATH=/
elif [ "$SHAPE" = grpc ]; then
  LOCATION="location / { grpc_pass grpc://up; grpc_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    grpc_set_header X-Real-IP \$remote_addr; grpc_set_header X-Request-ID \$request_id; }"
  REQUEST_PATH=/echo.Echo/Call
else
  LOCATION="location / { proxy_pass $UP_SCHEME://up; $PROXY_COMMON }"
  REQUEST_PATH=/
fi
UPSTREAM="server 127.0.0.1:$UP_PORT;"
[ "$SHAPE" = hash ] && UPSTREAM="hash \$request_uri consistent; server 127.0.0.1:$UP_PORT; server 127.0.0.2:$UP_PORT;
  server 127.0.0.3:$UP_PORT; server 127.0.0.4:$UP_PORT;"
nginx_conf proxy "upstream up { $UPSTREAM keepalive 128; }
  server { $PROXY_LISTEN $LOCATION }"

taskset -c "$LOAD_CORE" nginx -c "$WORK/upstream/nginx.conf" -p "$WORK/upstream" & PIDS+=($!)
taskset -c "$PROXY_CORE" nginx -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy" & PIDS+=($!); NGINX_PID=$!
FERRY_BENCH_SHAPE="$SHAPE" FERRY_WORK_STEALING="${FERRY_WORK_STEALING:-0}" taskset -c "$PROXY_CORE" "$FERRY_BIN" "127.0.0.1:$FERRY_PORT" "127.0.0.1:$UP_PORT" 1 & PIDS+=($!); FERRY_PID=$!

for port in $UP_PORT $NGINX_PORT $FERRY_PORT; do
  scheme=http CURL_OPTS=()
  [ "$port" = "$UP_PORT" ] && [ "$SHAPE" = https-upstream ] && scheme=https CURL_OPTS=(-k)
  [ "$SHAPE" = grpc ] && CURL_OPTS=(--http2-prior-knowledge -X POST -H 'content-type: application/grpc' --data-binary "@$WORK/grpc/echo.Echo/Call")
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${CURL_OPTS[@]}" "$scheme://127.0.0.1:$port$REQUEST_PATH" -H 'Host: bench.local' || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "port $port answers $code" >&2; exit 1; }
  if [ "$SHAPE" = basic-auth ] && [ "$port" != "$UP_PORT" ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -u bench:bench -H 'Host: bench.local' "http://127.0.0.1:$port/")
    [ "$code" = 200 ] || { echo "port $port answers $code to the bench user" >&2; exit 1; }
  fi
done

# CPU ticks (utime+stime) of a process and its children.
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$total"
}

# Latency string (e.g. 812.00us, 1.20ms, 2.00s) → milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# With BODY > 0, every request is a POST carrying that many bytes (Content-Length framed).
SCRIPT=()
if [ "$BODY" -gt 0 ]; then
  printf 'wrk.method = "POST"\nwrk.body = string.rep("x", %d)\n' "$BODY" >"$WORK/post.lua"
  SCRIPT=(-s "$WORK/post.lua")
fi

AUTH=()
[ "$SHAPE" = basic-auth ] && AUTH=(-H "Authorization: Basic $(printf 'bench:bench' | base64)")

load() { # port seconds → wrk's report (for gRPC, h2load's, told as wrk tells it)
  if [ "$SHAPE" = grpc ]; then
    local log="$WORK/h2load-$1.log" out
    out=$(taskset -c "$LOAD_CORE" h2load -c"$CONNS" -m4 -D "$2" -d "$WORK/grpc/echo.Echo/Call" \
      -H 'content-type: application/grpc' -H 'te: trailers' -H ':authority: bench.local' \
      --log-file="$log" "http://127.0.0.1:$1$REQUEST_PATH")
    awk '/^requests:/ { if ($8 + $10 > 0) print "Socket errors: " $8 " failed, " $10 " errored" }' <<<"$out" >&2
    awk -v d="$2" '$2 != 200 { bad++ } { print $3 } END { if (bad) print "Non-2xx responses: " bad > "/dev/stderr" }' "$log" \
      | sort -n | awk -v d="$2" '{ v[NR] = $1 } END {
          printf "  %d requests in %ss\nRequests/sec: %.2f\n", NR, d, NR / d
          printf " 50%% %.2fus\n 99%% %.2fus\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1] }'
    return
  fi
  taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${2}s" --latency "${SCRIPT[@]}" "${AUTH[@]}" -H 'Host: bench.local' "http://127.0.0.1:$1$REQUEST_PATH"
}

run() { # name port pid → "rps p50 p99 cpu_per_req", the proxy alone
  local name=$1 port=$2 pid=$3 t0 t1
  load "$port" 1 >/dev/null
  t0=$(ticks "$pid")
  load "$port" "$DURATION" >"$WORK/$name.wrk"
  t1=$(ticks "$pid")
  summarize "$name" "$t0" "$t1"
}

run_both() { # → two lines "rps p50 p99 cpu_per_req" (nginx, ferry), both loaded at once
  local n0 n1 f0 f1
  load $NGINX_PORT 1 >/dev/null & load $FERRY_PORT 1 >/dev/null & wait
  n0=$(ticks "$NGINX_PID"); f0=$(ticks "$FERRY_PID")
  load $NGINX_PORT "$DURATION" >"$WORK/nginx.wrk" & load $FERRY_PORT "$DURATION" >"$WORK/ferry.wrk" & wait
  n1=$(ticks "$NGINX_PID"); f1=$(ticks "$FERRY_PID")
  summarize nginx "$n0" "$n1"
  summarize ferry "$f0" "$f1"
}

summarize() { # name ticks_before ticks_after (wrk report in $WORK/name.wrk) → "rps p50 p99 cpu_per_req"
  local name=$1 t0=$2 t1=$3 out hz
  out=$(cat "$WORK/$name.wrk")
  hz=$(getconf CLK_TCK)
  local reqs rps p50 p99 errors
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [ -z "$errors" ] || echo "$name: $errors" >&2
  awk -v r="$reqs" -v a="$t0" -v b="$t1" -v hz="$hz" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
    'BEGIN { printf "%s %s %s %.3e\n", rps, p50, p99, (b - a) / hz / r }'
}

printf '%-6s %-8s %12s %10s %10s %16s\n' round proxy 'req/s' 'p50 ms' 'p99 ms' 'CPU-s/request'
: >"$WORK/ratios"
for round in $(seq 1 "$ROUNDS"); do
  if [ "$MODE" = concurrent ]; then
    { read -r N_RPS N_P50 N_P99 N_CPU; read -r F_RPS F_P50 F_P99 F_CPU; } < <(run_both)
  else
    if (( round % 2 )); then order="nginx ferry"; else order="ferry nginx"; fi
    for who in $order; do
      if [ "$who" = nginx ]; then
        read -r N_RPS N_P50 N_P99 N_CPU < <(run nginx $NGINX_PORT $NGINX_PID)
      else
        read -r F_RPS F_P50 F_P99 F_CPU < <(run ferry $FERRY_PORT $FERRY_PID)
      fi
    done
  fi
  printf '%-6s %-8s %12s %10s %10s %16s\n' "$round" nginx "$N_RPS" "$N_P50" "$N_P99" "$N_CPU"
  printf '%-6s %-8s %12s %10s %10s %16s\n' "$round" ferry "$F_RPS" "$F_P50" "$F_P99" "$F_CPU"
  awk -v fr="$F_RPS" -v nr="$N_RPS" -v f5="$F_P50" -v n5="$N_P50" -v f9="$F_P99" -v n9="$N_P99" -v fc="$F_CPU" -v nc="$N_CPU" \
    'BEGIN { printf "%.3f %.3f %.3f %.3f\n", fr/nr, f5/n5, f9/n9, fc/nc }' >>"$WORK/ratios"
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "per-round ratios ours/nginx (req/s, p50, p99, CPU/request):"
sed 's/^/  /' "$WORK/ratios"
printf 'median ratio ours/nginx: req/s %.2fx, p50 %.2fx, p99 %.2fx, CPU/request %.2fx\n' \
  "$(awk '{print $1}' "$WORK/ratios" | median)" "$(awk '{print $2}' "$WORK/ratios" | median)" \
  "$(awk '{print $3}' "$WORK/ratios" | median)" "$(awk '{print $4}' "$WORK/ratios" | median)"
requests="bodyless GETs"; [ "$BODY" -gt 0 ] && requests="POSTs of $BODY bytes"
[ "$SHAPE" = rewrite ] && requests="$requests of $REQUEST_PATH, rewritten, with a response header"
[ "$SHAPE" = basic-auth ] && requests="$requests with basic authentication (apr1)"
[ "$SHAPE" = hash ] && requests="$requests hashed by \$request_uri over 4 upstream addresses"
[ "$SHAPE" = https-upstream ] && requests="$requests, TLS to the upstream (kept alive)"
[ "$SHAPE" = grpc ] && requests="gRPC unary calls (h2load, h2c, 4 streams per connection) to a gRPC upstream"
echo "(${MODE}: ${ROUNDS} rounds of ${DURATION}s per proxy, ${CONNS} connections, $requests, proxy on core $PROXY_CORE, wrk + upstream on core $LOAD_CORE)"
