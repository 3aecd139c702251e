#!/usr/bin/env bash
# Benchmark: cache-heal save/restore with `--store s3://` against the pipeline people script
# today (`tar --posix -cf - … | zstd -T0 -3 | aws s3 cp - s3://…` and
# `aws s3 cp s3://… - | zstd -d | tar -x`), on the same ~1 GB package-cache-shaped tree and the
# same moto server (in memory, on 127.0.0.1), one run of each, alternating.
# Prints each time, the ratios and cache-heal's peak memory.
#
# usage: bash bench/s3.sh     (BENCH_DIR, default /dev/shm or .bench; TOTAL_MB, FILES as in
#                              bench/make_tree.py; moto and the AWS CLI from
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

# Runs a command under GNU time; prints "seconds max_rss_kib".
measure() {
  /usr/bin/time -o "$work/time.txt" -f '%e %M' "$@" >/dev/null
  tail -1 "$work/time.txt"
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

sync
read -r ps _ < <(measure bash -c "$(declare -f pipeline_save); work=$work tools=$tools pipeline_save")
read -r os peak_save < <(measure bash -c "$(declare -f ours_save); work=$work bin=$bin ours_save")
rm -rf "$work/ws/tree"; sync
read -r pr _ < <(measure bash -c "$(declare -f pipeline_restore); work=$work tools=$tools pipeline_restore")
diff -r --no-dereference "$work/reference" "$work/ws/tree" >/dev/null || { echo "the pipeline's tree differs!"; exit 1; }
rm -rf "$work/ws/tree"; sync
read -r or peak_restore < <(measure bash -c "$(declare -f ours_restore); work=$work bin=$bin ours_restore")
# The restored tree must equal the original, or the times mean nothing.
diff -r --no-dereference "$work/reference" "$work/ws/tree" >/dev/null || { echo "restored tree differs!"; exit 1; }

python3 - "$ps" "$os" "$pr" "$or" "$peak_save" "$peak_restore" <<'PY'
import sys
ps, os_, pr, or_, ms, mr = map(float, sys.argv[1:])
print()
print(f"{'':10}{'pipeline':>10}{'cache-heal':>12}{'ratio':>8}  bar")
print(f"{'save':10}{ps:>9.2f}s{os_:>11.2f}s{os_/ps:>8.2f}  <= 0.80 {'ok' if os_/ps <= 0.8 else 'MISSED'}")
print(f"{'restore':10}{pr:>9.2f}s{or_:>11.2f}s{or_/pr:>8.2f}  <= 0.80 {'ok' if or_/pr <= 0.8 else 'MISSED'}")
print(f"peak memory: save {ms/1024:.1f} MiB, restore {mr/1024:.1f} MiB (bar < 100 MiB: {'ok' if max(ms, mr) < 100*1024 else 'MISSED'})")
PY
