#!/usr/bin/env bash
# Benchmark of the GitHub Actions cache store: cache-heal save/restore against @actions/cache
# saveCache/restoreCache, through the same local stack (Azurite + the test cache service), on
# the same generated package-cache-like tree (~40,000 files, median ~2 KiB, ~1 GiB), in the same
# run. Prints one ratio per direction; the bar is 0.6x or less for both.
#
#   bash bench/gha.sh                      # the full size
#   BENCH_FILES=4000 BENCH_MIB=100 bash bench/gha.sh   # a quick look
#
# The tree, the archives and the restores live under TMPDIR, by default /dev/shm when it has
# room. On this project's VMs the disk is ext4 without a journal, where creating files soon
# after deleting as many (each run deletes the tree before restoring it) makes the kernel scan
# recently freed inodes on every create (`recently_deleted`): 40,000 files then take ~40 s for
# either tool, and the benchmark measures that scan, not the tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ "$(df --output=avail -k /dev/shm | tail -1)" -gt $((6 * 1024 * 1024)) ]; then
  export TMPDIR=/dev/shm
fi
bash scripts/install-test-deps.sh
cargo test --release --test gha_bench -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -v '^running\|^test result\|^$'
