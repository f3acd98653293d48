#!/usr/bin/env bash
# Runs the route-matching benchmarks and prints a summary table against the targets:
#   median lookup ≤ 100 ns (10k hosts × 10 paths), flat within 2× from 100 to 100k routes,
#   ≤ 150 bytes per route, build ≤ 50 ms.
# Usage: benches/route-summary.sh [--no-run]   (--no-run only re-prints the last results)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--no-run" ] || { cargo bench -p ferry-benches --bench memory >&2 && cargo bench -p ferry-benches --bench routes >&2; }
dir=target/criterion
median() { jq -r '.median.point_estimate' "$dir/$1/new/estimates.json"; }
batch=1000
printf '%-10s %16s %22s %16s %14s\n' routes "hit ns/lookup" "hit, 10% regex hosts" "miss ns/lookup" "bytes/route"
for routes in 100 1000 10000 100000; do
  hit=$(median "lookup/hit/$routes")
  regex=$(median "lookup/hit-regex10/$routes")
  miss=$(median "lookup/miss/$routes")
  mem=$(awk -v r="$routes" '$1==r {print $2}' "$dir/route-memory.tsv")
  printf '%-10s %16.1f %22.1f %16.1f %14s\n' "$routes" "$(echo "$hit / $batch" | bc -l)" "$(echo "$regex / $batch" | bc -l)" "$(echo "$miss / $batch" | bc -l)" "$mem"
done
h100=$(median lookup/hit/100); h100k=$(median lookup/hit/100000)
printf '\nflatness (hit 100k / hit 100): %.2fx   (target ≤ 2x)\n' "$(echo "$h100k / $h100" | bc -l)"
for routes in 10000 100000; do
  printf 'build %6s routes: %8.2f ms   (target ≤ 50 ms for 100000)\n' "$routes" "$(echo "$(median "build/$routes") / 1000000" | bc -l)"
  printf 'build %6s routes, 10%% regex hosts: %8.2f ms\n' "$routes" "$(echo "$(median "build/regex10/$routes") / 1000000" | bc -l)"
done
