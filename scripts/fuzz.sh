#!/usr/bin/env bash
# Fuzzes the byte parsers of the proxy's HTTP/1 engine (the `cargo fuzz` targets in fuzz/:
# request_head, chunks, response_head, error_page, proxy_protocol, client_hello; the checks are
# in ingress-proxy/src/h1/fuzz.rs, ingress-proxy/src/proxy_protocol.rs and
# ingress-proxy/src/passthrough/hello.rs), each for
# FUZZ_SECONDS (default 60) seconds, one after another. Exits non-zero when a target fails an
# invariant or crashes, after printing the failing input in hex.
#
#   scripts/fuzz.sh                          # all targets, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh chunks  # one target, 5 minutes
#
# Each run starts from a temporary copy of the seed corpus (fuzz/corpus/<target>/), and writes
# what it finds there, so the working tree stays clean. The first build takes a while (every
# dependency is built again with sanitizer instrumentation, about 13 minutes on 2 cores); later
# ones only rebuild what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_head chunks response_head error_page proxy_protocol client_hello)

command -v cargo-fuzz >/dev/null || cargo install --locked --version 0.13.2 cargo-fuzz
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address and others); the pinned stable
# toolchain accepts them when told it is bootstrapping.
export RUSTC_BOOTSTRAP=1
# All targets at once, with no time limit: a first build is slow, and is not fuzzing time.
cargo fuzz build

work="$(mktemp -d)"
failed=()
# A failing run's inputs stay (their path is printed); a clean one leaves nothing behind.
trap '[ ${#failed[@]} -gt 0 ] || rm -rf "$work"' EXIT

for target in "${targets[@]}"; do
  corpus="$work/$target/corpus"
  artifacts="$work/$target/artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/corpus/"$target"/* "$corpus"/
  echo "fuzz: $target for ${seconds}s" >&2
  status=0
  # libFuzzer stops itself after -max_total_time; `timeout` is the backstop should it not (a
  # hang in an input is reported after -timeout seconds). -artifact_prefix, after cargo-fuzz's
  # own, sends failing inputs to the temporary directory. The dictionary holds the HTTP tokens
  # the parsers act on.
  timeout --kill-after=30 "$((seconds + 120))" \
    cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    -dict="$PWD/fuzz/http.dict" -artifact_prefix="$artifacts/" || status=$?
  found=("$artifacts"/*)
  if [ "$status" -ne 0 ] || [ -e "${found[0]}" ]; then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit status $status)" >&2
    for input in "${found[@]}"; do
      [ -e "$input" ] || continue
      echo "fuzz: failing input $input ($(wc -c <"$input") bytes), to replay:" >&2
      echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run $target $input" >&2
      od -A x -t x1z -v "$input" >&2
    done
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs kept in $work)" >&2
  exit 1
fi
echo "fuzz: ${targets[*]}: no failure in ${seconds}s each" >&2
