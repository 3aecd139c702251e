#!/usr/bin/env bash
# The users' metric: time from a cold CI job to a ready virtual environment, per caching strategy.
#
#   bash bench/ready-env.sh       # 3 runs; 30 ms per request, 40 MB/s per connection, 125 MB/s in all
#   READY_ENV_RUNS=5 READY_ENV_LATENCY_MS=50 READY_ENV_MBPS=20 bash bench/ready-env.sh
#
# A lock of 76 packages (bench/ready-env-lock.txt: numpy, scipy, pandas, pyarrow, scikit-learn,
# matplotlib … and three sdists, markupsafe's with a C extension) is fetched from PyPI once into
# .bench-cache/ready-env (git-ignored) and served by a throttled PyPI-like index on 127.0.0.1
# (bench/ready_env.py, which ends with the bench). Every job starts with an empty uv cache and an
# empty venv; the timed part is the restore plus `uv venv` and `uv pip sync` of the lock.
# Strategies: no cache; setup-uv's exact key (whole cache, and with `prune-cache: true`);
# actions/cache with restore keys; cache-heal with its defaults (and, for comparison only,
# with `--prune wheels`). The store is a local directory for all of them; each restore then waits
# as long as the cache service would take to send its entry (READY_ENV_CACHE_MBPS, 125 MB/s).
# Scenarios: the same lock, a changed lock (requests bumped), a new Python (a 3.11 entry restored
# by a 3.12 job). Prints a table of medians and PASS/FAIL for the bars; exits 1 if a bar fails.
# Each row's "link floor" is the least time its bytes take at those rates (index bytes at the
# cap for all connections, the entry at the cache service's rate): no strategy beats its own.
#
# Knobs: READY_ENV_RUNS (3), READY_ENV_LATENCY_MS (30), READY_ENV_MBPS (40 per connection; 0: no cap),
# READY_ENV_TOTAL_MBPS (125 for all connections together, a runner's 1 Gbit/s; 0: no cap),
# READY_ENV_CACHE_MBPS (125, the cache service's download rate; 0: a restore is free),
# READY_ENV_SCRATCH (default: tmpfs when it has room, else .bench/ready-env),
# READY_ENV_JSON (a file for every job's figures). Each job's commands and output are logged in
# .bench/ready-env-logs (git-ignored).
# Not a test: it prints numbers. Needs what scripts/install-test-deps.sh installs, GNU tar, zstd,
# a C compiler, pyenv's 3.11 and 3.12, and PyPI the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

UV="$PWD/.test-deps/uv-0.13.9/bin/uv"
[ -x "$UV" ] || { echo "uv is missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
py() { ls -d "$PYENV_ROOT"/versions/"$1".*/bin/python3 2>/dev/null | sort -V | tail -1; }
PY311="$(py 3.11)"; PY312="$(py 3.12)"
[ -n "$PY311" ] && [ -n "$PY312" ] || { echo "pyenv Python 3.11 and 3.12 are needed" >&2; exit 1; }
for tool in tar zstd cc; do
  command -v "$tool" >/dev/null || { echo "$tool is needed on PATH" >&2; exit 1; }
done

echo "==> cargo build --release"
cargo build --release -q
CH="$PWD/target/release/cache-heal"

# tmpfs when it has room (the jobs write and delete ~2 GB of small files per job: on this kind
# of VM's ext4 a create after a mass delete crawls, see CONTRIBUTING.md), else the disk.
SCRATCH="${READY_ENV_SCRATCH:-}"
if [ -z "$SCRATCH" ]; then
  shm_free_kb=$(df -k --output=avail /dev/shm 2>/dev/null | tail -1 || echo 0)
  mem_free_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  if [ "${shm_free_kb:-0}" -gt 12000000 ] && [ "${mem_free_kb:-0}" -gt 12000000 ]; then
    SCRATCH="/dev/shm/cache-heal-ready-env-$$"
  else
    SCRATCH="$PWD/.bench/ready-env"
  fi
fi
KIND="$(df --output=fstype "$(dirname "$SCRATCH")" | tail -1)"
trap 'rm -rf "$SCRATCH"' EXIT

"$PY311" bench/ready_env.py --uv "$UV" --cache-heal "$CH" --py311 "$PY311" --py312 "$PY312" \
  --scratch "$SCRATCH" --scratch-kind "$KIND" --fetch-dir "$PWD/.bench-cache/ready-env" \
  --logs "$PWD/.bench/ready-env-logs" \
  --runs "${READY_ENV_RUNS:-3}" --latency-ms "${READY_ENV_LATENCY_MS:-30}" \
  --mbps "${READY_ENV_MBPS:-40}" --total-mbps "${READY_ENV_TOTAL_MBPS:-125}" \
  --cache-mbps "${READY_ENV_CACHE_MBPS:-125}" \
  ${READY_ENV_JSON:+--json "$READY_ENV_JSON"}
