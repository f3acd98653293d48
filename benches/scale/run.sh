#!/usr/bin/env bash
# The release controller in standalone mode on a generated cluster: N Ingresses × 10 paths
# (N=10000 by default), SERVICES × N Services and EndpointSlices (SERVICES=2 by default: each
# Ingress's paths alternate between two Services; SERVICES=1 is issue 15's shape, one Service
# and EndpointSlice per Ingress), N/10 TLS Secrets (the demo's certificate). Prints the cold
# start (process start → /readyz 200), RSS after start, then CHANGES edits of one Ingress file
# (each waited for until its new path is routed) and RSS every 25 changes. Traffic stays on 127.0.0.1; endpoints are 127.0.0.1:9 (nothing listens).
#   N=10000 CHANGES=100 SERVICES=1 benches/scale/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-10000}"
CHANGES="${CHANGES:-100}"
SERVICES="${SERVICES:-2}"
case "$SERVICES" in 1 | 2) ;; *) echo "SERVICES must be 1 or 2" >&2; exit 2 ;; esac
cargo build --release -q -p ingress-cli
bin="$PWD/target/release/ingress-controller"
dir=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir "$dir/m"
python3 - "$dir/m" "$N" "$SERVICES" <<'PY'
import sys, pathlib
out, n, services = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
demo = pathlib.Path("examples/demo/webapp-tls-secret.yaml").read_text()
crt = demo.split("tls.crt: |")[1].split("tls.key: |")[0]
key = demo.split("tls.key: |")[1]
crt_lines = "".join("    " + l.strip() + "\n" for l in crt.strip().splitlines())
key_lines = "".join("    " + l.strip() + "\n" for l in key.strip().splitlines() if l.strip())
(out / "class.yaml").write_text("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: ferry.dev/ingress-controller}\n")
ing, svc, sec = [], [], []
for i in range(n):
    ns = f"team-{i % 50}"
    paths = "".join(
        f"      - {{path: {'/' if j == 0 else f'/p{j}'}, pathType: {'Exact' if j % 3 == 0 else 'Prefix'}, backend: {{service: {{name: {'web' if j % 2 == 0 or services == 1 else 'api'}-{i}, port: {{number: 80}}}}}}}}\n"
        for j in range(10))
    tls = f"  tls: [{{hosts: [svc-{i}.apps.example.com], secretName: tls-{i}}}]\n" if i % 10 == 0 else ""
    ing.append(f"---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: ing-{i}, namespace: {ns}}}\nspec:\n  ingressClassName: nginx\n{tls}  rules:\n  - host: svc-{i}.apps.example.com\n    http:\n      paths:\n{paths}")
    for s in (f"web-{i}", f"api-{i}")[:services]:
        svc.append(f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {s}, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80, targetPort: 9}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {s}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {s}}}}}\naddressType: IPv4\nports: [{{name: http, port: 9}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n")
    if i % 10 == 0:
        sec.append(f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: tls-{i}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{crt_lines}  tls.key: |\n{key_lines}")
(out / "ingresses.yaml").write_text("".join(ing))
(out / "services.yaml").write_text("".join(svc))
(out / "secrets.yaml").write_text("".join(sec))
PY
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); https=$(port); admin=$(port)
change() { # k: one Ingress, its path /v<k>
  printf -- "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: churn, namespace: team-0}\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: churn.example.com\n    http:\n      paths:\n      - {path: /v%s, pathType: Exact, backend: {service: {name: web-0, port: {number: 80}}}}\n" "$1" > "$dir/m/churn.yaml.tmp"
  mv "$dir/m/churn.yaml.tmp" "$dir/m/churn.yaml"
}
change 0
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
start=$(date +%s.%N)
"$bin" --manifests "$dir/m" --ingress-class nginx --bind-address 127.0.0.1 \
  --http-port "$http" --https-port "$https" --admin-port "$admin" >/dev/null 2>"$dir/log" &
pid=$!
until curl -fs -o /dev/null "http://127.0.0.1:$admin/readyz"; do
  kill -0 "$pid" || { cat "$dir/log"; exit 1; }
  sleep 0.05
done
ready=$(date +%s.%N)
sleep 1
echo "ingresses=$N routes=$((N * 10)) services=$((N * SERVICES)) cold start to /readyz: $(echo "$ready - $start" | bc -l | xargs printf '%.2f') s, RSS after start: $(rss) MiB"
routed() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: churn.example.com' "http://127.0.0.1:$http/v$1")" != 404 ]; }
times=()
rss_seen=()
for k in $(seq 1 "$CHANGES"); do
  t0=$(date +%s%N); change "$k"
  deadline=$((t0 + 30000000000))
  until routed "$k"; do [ "$(date +%s%N)" -lt "$deadline" ] || { echo "change $k not routed in 30 s"; exit 1; }; sleep 0.005; done
  times+=($(( ($(date +%s%N) - t0) / 1000000 )))
  if [ $((k % 25)) -eq 0 ]; then rss_seen+=("$k:$(rss)"); fi
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
p() { echo "$sorted" | awk -v q="$1" '{a[NR]=$1} END {i=int((NR-1)*q)+1; print a[i]}'; }
echo "$CHANGES changes (file written → new path routed, manifest polling included): p50 $(p 0.5) ms, p99 $(p 0.99) ms; RSS (MiB) after changes: ${rss_seen[*]}"
