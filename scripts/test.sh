#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the build needs, then
# `cargo test --workspace` (unit, integration and doc tests; examples and benches are built),
# then each fuzz target (HTTP/1 parsers, PROXY protocol, TLS ClientHello) for a bounded time (FUZZ_SECONDS, 30 by default;
# scripts/fuzz.sh runs them longer by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A full run builds every test binary: incremental state (about 2.5 GB on a fresh machine) would
# only take disk, which a CI machine once ran out of. Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The Kubernetes tests need the real API server: build it once (cached) and start it. The tests
# call `ensure` themselves too, so plain `cargo test` works as well.
bash scripts/apiserver.sh ensure
cargo test --workspace --all-targets
cargo test --workspace --doc
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash scripts/fuzz.sh
