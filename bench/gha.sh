#!/usr/bin/env bash
# Benchmark of the GitHub Actions cache store: cache-heal save/restore against @actions/cache
# saveCache/restoreCache, through the same local stack (Azurite + the test cache service), on
# the same generated package-cache-like tree, in the same run, with cache-heal's restore from a
# local-directory store and GNU `tar -x` of the uncompressed tar as the floors. Every row
# prints wall time, CPU time and peak RSS (`/usr/bin/time`); the closing lines give the restore
# ratios against @actions/cache (bar 0.6x) and against the local-directory restore (bar 1.2x),
# and the save ratio (bar 0.6x). Peak RSS bar: under 100 MiB for both cache-heal GitHub rows.
#
#   bash bench/gha.sh                                   # ~600 MiB, 20,000 files, 3 runs
#   BENCH_MIB=5000 BENCH_RUNS=1 bash bench/gha.sh       # a 5 GB tree (needs ~16 GB of TMPDIR)
#   BENCH_FILES=4000 BENCH_MIB=100 bash bench/gha.sh    # a quick look
#
# BENCH_LINK_MBPS=50 sends every blob GET's body through the test service's proxy at 50 MB/s per
# connection, a link whose limit is each connection's rate (how parallel GETs pay off).
#
# BENCH_FLOOR=false skips the GNU tar row (its uncompressed tar takes the tree's size again; it
# is skipped by default above 2 GiB).
#
# The tree, the archives and the restores live under TMPDIR, by default /dev/shm when it has
# room. On this project's VMs the disk is ext4 without a journal, where creating files soon
# after deleting as many (each run deletes the tree before restoring it) makes the kernel scan
# recently freed inodes on every create (`recently_deleted`): 40,000 files then take ~40 s for
# either tool, and the benchmark measures that scan, not the tools.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${BENCH_MIB:-600}
need_kib=$(( (mib * 3 + 2048) * 1024 ))
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ "$(df --output=avail -k /dev/shm | tail -1)" -gt "$need_kib" ]; then
  export TMPDIR=/dev/shm
fi
avail=$(df --output=avail -k "${TMPDIR:-/tmp}" | tail -1)
if [ "$avail" -lt "$need_kib" ]; then
  echo "bench/gha.sh: ${TMPDIR:-/tmp} has $((avail / 1024)) MiB free; a ${mib} MiB tree needs about $((need_kib / 1024)) MiB (tree, archives, restore)" >&2
  exit 1
fi
bash scripts/install-test-deps.sh
cargo test --release --test gha_bench -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -v '^running\|^test result\|^$'
