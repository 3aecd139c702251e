#!/usr/bin/env bash
# Benchmark of the GitHub Actions cache store: cache-heal save/restore against @actions/cache
# saveCache/restoreCache, through the same local stack (Azurite + the test cache service), on
# the same generated package-cache-like tree (~40,000 files, median ~2 KiB, ~1 GiB), in the same
# run. Prints one ratio per direction; the bar is 0.6x or less for both.
#
#   bash bench/gha.sh                      # the full size
#   BENCH_FILES=4000 BENCH_MIB=100 bash bench/gha.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --release --test gha_bench -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -v '^running\|^test result\|^$'
