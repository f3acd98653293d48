#!/usr/bin/env bash
# Route lookup with cold caches (benches/lookup_cold.rs, which also prints what one dependent
# load costs over working sets of 1 to 256 MiB, in 4 KiB and in 2 MiB pages), then cache misses
# per lookup for 100 and 100k routes: a run of N warm-sweep lookups minus a run of none
# (building the table costs the same in both), counted by the CPU (`perf stat`) or, where the
# machine has no hardware counters (a VM), simulated by valgrind's cachegrind (its D1 and
# last-level models).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p ferry-benches --bench lookup_cold
bin=$(ls -t target/release/deps/lookup_cold-* | grep -v '\.d$' | head -1)
per() { echo "($2 - $1) / $3" | bc -l; }
if command -v perf >/dev/null && LOOKUP_ONLY=10:1 perf stat -x, -e cache-misses "$bin" 2>&1 >/dev/null | grep -qv 'not supported'; then
  n=2000000
  count() { LOOKUP_ONLY="$1:$2" perf stat -x, -e cache-misses "$bin" 2>&1 >/dev/null | awk -F, '$3=="cache-misses"{print $1}'; }
  printf '%-8s %28s\n' routes "cache misses/lookup (perf)"
  for hosts in 10 10000; do
    printf '%-8s %28.3f\n' "$((hosts * 10))" "$(per "$(count "$hosts" 0)" "$(count "$hosts" "$n")" "$n")"
  done
elif command -v valgrind >/dev/null; then
  n=200000
  # "D1  misses: 1,234 ( 1,000 rd + 234 wr)" → 1234
  count() {
    LOOKUP_ONLY="$1:$2" valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null "$bin" 2>&1 \
      | awk -v what="$3" '$2 == what && $3 == "misses:" {gsub(",", "", $4); print $4}'
  }
  printf '%-8s %30s %30s\n' routes "D1 misses/lookup (cachegrind)" "LLd misses/lookup (cachegrind)"
  for hosts in 10 10000; do
    d1=$(per "$(count "$hosts" 0 D1)" "$(count "$hosts" "$n" D1)" "$n")
    ll=$(per "$(count "$hosts" 0 LLd)" "$(count "$hosts" "$n" LLd)" "$n")
    printf '%-8s %30.3f %30.3f\n' "$((hosts * 10))" "$d1" "$ll"
  done
else
  echo "neither perf counters nor valgrind: no cache-miss counts"
fi
