#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the build needs, then
# `cargo test --workspace` (unit, integration and doc tests; examples and benches are built).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
