#!/usr/bin/env bash
# Route lookup flatness, 100k against 100 routes (benches/flatness.rs), `RUNS` runs (default
# 5) of the two tables timed in turn, so that the machine's load hits both sizes alike (not all
# of its noise: see flatness.rs); then
# what each lookup costs in instructions and data-cache misses at both sizes, counted by the
# CPU (`perf stat`) or, where the machine has no hardware counters (a VM), simulated by
# valgrind's cachegrind: a run of N passes minus a run of none (building the tables costs the
# same in both). Two request sets: `routes`, the criterion bench's 1,000 requests
# (`lookup/hit/<routes>` in benches/routes.rs), and `sweep`, 70,000 requests over every host.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p ferry-benches --bench flatness --no-run
bin=$(ls -t target/release/deps/flatness-* | grep -v '\.d$' | head -1)
runs=${RUNS:-5}
worst_routes=0 worst_sweep=0
for run in $(seq "$runs"); do
  out=$("$bin" --bench)
  [ "$run" = 1 ] && echo "$out" | head -1
  echo "$out" | tail -2
  worst_routes=$(echo "$out" | awk -v w="$worst_routes" '$1=="routes" {f=$4+0; print (f > w ? f : w)}')
  worst_sweep=$(echo "$out" | awk -v w="$worst_sweep" '$1=="sweep" {f=$4+0; print (f > w ? f : w)}')
done
printf '\nworst flatness over %s runs: routes %.2fx, sweep %.2fx   (target ≤ 2x in every run)\n\n' \
  "$runs" "$worst_routes" "$worst_sweep"
per() { echo "($2 - $1) / $3" | bc -l; }
lookups() { [ "$1" = routes ] && echo 1000 || echo 70000; }
if command -v perf >/dev/null && FLATNESS_ONLY=10:routes:1 perf stat -x, -e instructions,cache-misses "$bin" 2>&1 >/dev/null | grep -q ',instructions' \
  && ! FLATNESS_ONLY=10:routes:1 perf stat -x, -e instructions,cache-misses "$bin" 2>&1 >/dev/null | grep -q 'not supported'; then
  count() { FLATNESS_ONLY="$1:$2:$3" perf stat -x, -e "$4" "$bin" 2>&1 >/dev/null | awk -F, -v e="$4" '$3==e {print $1}'; }
  printf '%-7s %-8s %22s %26s\n' set routes "instructions/lookup" "cache misses/lookup (perf)"
  for set in routes sweep; do
    passes=$([ "$set" = routes ] && echo 2000 || echo 30)
    n=$((passes * $(lookups "$set")))
    for hosts in 10 10000; do
      i=$(per "$(count "$hosts" "$set" 0 instructions)" "$(count "$hosts" "$set" "$passes" instructions)" "$n")
      m=$(per "$(count "$hosts" "$set" 0 cache-misses)" "$(count "$hosts" "$set" "$passes" cache-misses)" "$n")
      printf '%-7s %-8s %22.0f %26.3f\n' "$set" "$((hosts * 10))" "$i" "$m"
    done
  done
elif command -v valgrind >/dev/null; then
  # "I   refs: 1,234" / "D1  misses: 1,234 ( 1,000 rd + 234 wr)" → 1234
  count() {
    FLATNESS_ONLY="$1:$2:$3" valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null "$bin" 2>&1 \
      | awk '$2 == "I" && $3 == "refs:" {gsub(",", "", $4); print "I", $4}
             ($2 == "D1" || $2 == "LLd") && $3 == "misses:" {gsub(",", "", $4); print $2, $4}'
  }
  pick() { echo "$1" | awk -v w="$2" '$1 == w {print $2}'; }
  printf '%-7s %-8s %22s %30s %30s\n' set routes "instructions/lookup" "D1 misses/lookup (cachegrind)" "LLd misses/lookup (cachegrind)"
  for set in routes sweep; do
    passes=$([ "$set" = routes ] && echo 100 || echo 3)
    n=$((passes * $(lookups "$set")))
    for hosts in 10 10000; do
      a=$(count "$hosts" "$set" 0) b=$(count "$hosts" "$set" "$passes")
      printf '%-7s %-8s %22.0f %30.3f %30.3f\n' "$set" "$((hosts * 10))" "$(per "$(pick "$a" I)" "$(pick "$b" I)" "$n")" \
        "$(per "$(pick "$a" D1)" "$(pick "$b" D1)" "$n")" "$(per "$(pick "$a" LLd)" "$(pick "$b" LLd)" "$n")"
    done
  done
else
  echo "neither perf counters nor valgrind: no instruction or cache-miss counts"
fi
