#!/usr/bin/env bash
# Benchmark: cache-heal save/restore with `--store s3://` against the pipeline people script
# today (`tar --posix -cf - … | zstd -T0 -3 | aws s3 cp - s3://…` and
# `aws s3 cp s3://… - | zstd -d | tar -x`), on the same ~1 GB package-cache-shaped tree and the
# same moto server (in memory, on 127.0.0.1), ROUNDS runs of each (default 1), alternating.
# Prints each wall time, CPU time (ours, and moto's meanwhile), the ratios and peak memory.
#
# usage: bash bench/s3.sh     (BENCH_DIR, default /dev/shm or .bench; TOTAL_MB, FILES as in
#                              bench/make_tree.py; ROUNDS; moto and the AWS CLI from
#                              scripts/install-test-deps.sh)
# Bars (issue 10): cache-heal at most 0.8x the pipeline's time for save and for restore, peak
# memory < 100 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tools=$repo/.test-deps/s3/bin
[ -x "$tools/moto_server" ] && [ -x "$tools/aws" ] ||
  { echo "moto or the AWS CLI is missing; run: bash scripts/install-test-deps.sh"; exit 1; }

if [ -z "${BENCH_DIR:-}" ]; then
  if [ -d /dev/shm ] && [ "$(df --output=avail -k /dev/shm | tail -1)" -gt $((6 * 1024 * 1024)) ]; then
    BENCH_DIR=/dev/shm/cache-heal-bench-s3
  else
    BENCH_DIR=$repo/.bench-s3
  fi
fi
echo "==> building cache-heal (release)"
cargo build --release --locked -q
bin=$repo/target/release/cache-heal

work=$BENCH_DIR
rm -rf "$work"
mkdir -p "$work/ws"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tools/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 100); do
  "$tools/aws" s3api create-bucket --bucket bench >/dev/null 2>&1 && break
  sleep 0.2
done

echo "==> generating the tree in $work/ws/tree"
python3 bench/make_tree.py "$work/ws/tree" ${FILES:+--files "$FILES"} ${TOTAL_MB:+--total-mb "$TOTAL_MB"}
cp -a "$work/ws/tree" "$work/reference"

# Runs a command under GNU time; prints "seconds max_rss_kib cpu_seconds moto_cpu_seconds": wall
# time, the command's peak RSS (the largest process: for a pipeline, its biggest stage), the
# user + system CPU of the command and its children, and the CPU moto spent meanwhile (moto is
# a Python server on the same cores: what it burns is not ours, but it slows us).
moto_ticks() { awk '{print $14 + $15}' "/proc/$moto/stat"; }
measure() {
  local before after
  before=$(moto_ticks)
  /usr/bin/time -o "$work/time.txt" -f '%e %M %U %S' "$@" >/dev/null
  after=$(moto_ticks)
  read -r wall rss user sys < <(tail -1 "$work/time.txt")
  python3 -c "import sys; print(sys.argv[1], sys.argv[2], round(float(sys.argv[3]) + float(sys.argv[4]), 2), round((int(sys.argv[6]) - int(sys.argv[5])) / $(getconf CLK_TCK), 2))" \
    "$wall" "$rss" "$user" "$sys" "$before" "$after"
}

pipeline_save() {
  tar --posix -cf - -P -C "$work/ws" tree | zstd -T0 -3 -q | "$tools/aws" s3 cp - s3://bench/pipeline/cache.tzst
}
pipeline_restore() {
  "$tools/aws" s3 cp s3://bench/pipeline/cache.tzst - | zstd -d -q | tar -xf - -P -C "$work/ws"
}
ours_save() {
  (cd "$work/ws" && "$bin" save --quiet --path tree --key bench --store s3://bench/ours)
}
ours_restore() {
  (cd "$work/ws" && "$bin" restore --quiet --path tree --key bench --store s3://bench/ours)
}

# ROUNDS (default 1) rounds, each tool in turn within a round, so load on a shared machine
# falls on both alike; the ratios are of the medians.
echo "==> $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the runs"
results=$work/results.txt
: >"$results"
for round in $(seq "${ROUNDS:-1}"); do
  sync
  echo "save pipeline $(measure bash -c "$(declare -f pipeline_save); work=$work tools=$tools pipeline_save")" >>"$results"
  # A fresh key each time, or the second save would find the entry there already.
  "$tools/aws" s3 rm --recursive --quiet s3://bench/ours/ >/dev/null
  echo "save ours $(measure bash -c "$(declare -f ours_save); work=$work bin=$bin ours_save")" >>"$results"
done
for round in $(seq "${ROUNDS:-1}"); do
  rm -rf "$work/ws/tree"; sync
  echo "restore pipeline $(measure bash -c "$(declare -f pipeline_restore); work=$work tools=$tools pipeline_restore")" >>"$results"
  diff -r --no-dereference "$work/reference" "$work/ws/tree" >/dev/null || { echo "the pipeline's tree differs!"; exit 1; }
  rm -rf "$work/ws/tree"; sync
  echo "restore ours $(measure bash -c "$(declare -f ours_restore); work=$work bin=$bin ours_restore")" >>"$results"
  # The restored tree must equal the original, or the times mean nothing.
  diff -r --no-dereference "$work/reference" "$work/ws/tree" >/dev/null || { echo "restored tree differs!"; exit 1; }
done
echo "==> load average $(cut -d' ' -f1-3 /proc/loadavg) after the runs"

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    direction, tool, wall, rss, cpu, moto = line.split()
    rows.setdefault((direction, tool), []).append((float(wall), float(rss), float(cpu), float(moto)))
med = lambda xs: statistics.median(xs)
print()
print(f"{'':9}{'tool':>11}{'wall':>9}{'cpu':>9}{'moto cpu':>10}{'peak RSS':>11}")
for (direction, tool), runs in rows.items():
    print(f"{direction:9}{tool:>11}{med([r[0] for r in runs]):>8.2f}s{med([r[2] for r in runs]):>8.2f}s"
          f"{med([r[3] for r in runs]):>9.2f}s{max(r[1] for r in runs) / 1024:>7.1f} MiB")
print()
peak = 0
for direction in ("save", "restore"):
    pipe, ours = rows[(direction, "pipeline")], rows[(direction, "ours")]
    ratio = med([r[0] for r in ours]) / med([r[0] for r in pipe])
    cpu = med([r[2] for r in ours]) / med([r[2] for r in pipe])
    peak = max([peak] + [r[1] for r in ours])
    print(f"{direction:8} wall ratio {ratio:.2f} (bar <= 0.80: {'ok' if ratio <= 0.8 else 'MISSED'}),"
          f" cpu ratio {cpu:.2f}, {len(ours)} run(s) each")
print(f"peak memory of cache-heal: {peak / 1024:.1f} MiB (bar < 100 MiB: {'ok' if peak < 100 * 1024 else 'MISSED'})")
PY
