#!/usr/bin/env bash
# Benchmark: cache-heal save/restore against the commands actions/cache runs
# (`tar --posix -cf - ... | zstd -T0 -3` and `zstd -d | tar -xf -`), on the same tree, in the
# same run, alternating runs to share the machine's noise. Prints each time, the ratios, the
# archives' sizes and zstd frames, and cache-heal's peak memory.
#
# usage: bash bench/archive.sh            (BENCH_DIR, default /dev/shm or .bench; RUNS, default 3)
#        CORPUS=wheels bash bench/archive.sh
#        BIN=/path/to/cache-heal bash bench/archive.sh   (another build, e.g. to compare two)
#
# Corpora (bench/make_tree.py):
# - `packages` (the default): a ~1 GB package-cache-shaped tree, ~40,000 files. Bars (issue 2):
#   restore ≤ 0.8× GNU, save ≤ 1.0× GNU, peak memory < 100 MiB.
# - `wheels`: 4 files of 256 MiB of compressible data, like a cache of big ML wheels: restore is
#   bound by decompression, which cache-heal spreads over every core by frame while `zstd -d`
#   uses one. Bar (issue 11): restore ≤ 0.6× GNU.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

runs=${RUNS:-3}
corpus=${CORPUS:-packages}
case "$corpus" in
  packages) restore_bar=0.8 ;;
  wheels) restore_bar=0.6 ;;
  *) echo "CORPUS must be packages or wheels, not \`$corpus\`" >&2; exit 2 ;;
esac
if [ -z "${BENCH_DIR:-}" ]; then
  if [ -d /dev/shm ] && [ "$(df --output=avail -k /dev/shm | tail -1)" -gt $((6 * 1024 * 1024)) ]; then
    BENCH_DIR=/dev/shm/cache-heal-bench
  else
    BENCH_DIR=$repo/.bench
  fi
fi
if [ -n "${BIN:-}" ]; then
  bin=$(realpath "$BIN")
else
  echo "==> building cache-heal (release)"
  cargo build --release --locked -q
  bin=$repo/target/release/cache-heal
fi

work=$BENCH_DIR
rm -rf "$work"
mkdir -p "$work/ws" "$work/store" "$work/gnu"
trap 'rm -rf "$work"' EXIT
echo "==> generating the $corpus tree in $work/ws/tree ($(nproc) cores; other load: $(cut -d' ' -f1 /proc/loadavg))"
python3 bench/make_tree.py "$work/ws/tree" --shape "$corpus" ${FILES:+--files "$FILES"} ${TOTAL_MB:+--total-mb "$TOTAL_MB"}
cp -a "$work/ws/tree" "$work/reference"

# Runs a command under GNU time; prints "seconds max_rss_kib".
measure() {
  /usr/bin/time -o "$work/time.txt" -f '%e %M' "$@" >/dev/null
  tail -1 "$work/time.txt"
}

gnu_save() {
  (cd "$work/gnu" && printf 'tree' > manifest.txt &&
    tar --posix -cf - -P -C "$work/ws" --files-from manifest.txt | zstd -T0 -3 -q -o cache.tzst -f)
}
gnu_restore() {
  zstd -d -q -c "$work/gnu/cache.tzst" | tar -xf - -P -C "$work/ws"
}
ours_save() {
  rm -rf "$work/store" && mkdir -p "$work/store"
  (cd "$work/ws" && "$bin" save --quiet --path tree --key bench --store "dir:$work/store")
}
ours_restore() {
  (cd "$work/ws" && "$bin" restore --quiet --path tree --key bench --store "dir:$work/store")
}

best() { sort -n | head -1; }
gnu_save_t=(); ours_save_t=(); gnu_restore_t=(); ours_restore_t=(); peak_save=0; peak_restore=0
for run in $(seq "$runs"); do
  sync
  read -r t _ < <(measure bash -c "$(declare -f gnu_save); work=$work gnu_save"); gnu_save_t+=("$t")
  read -r t m < <(measure bash -c "$(declare -f ours_save); work=$work bin=$bin ours_save"); ours_save_t+=("$t")
  [ "$m" -gt "$peak_save" ] && peak_save=$m
  rm -rf "$work/ws/tree"; sync
  read -r t _ < <(measure bash -c "$(declare -f gnu_restore); work=$work gnu_restore"); gnu_restore_t+=("$t")
  rm -rf "$work/ws/tree"; sync
  read -r t m < <(measure bash -c "$(declare -f ours_restore); work=$work bin=$bin ours_restore"); ours_restore_t+=("$t")
  [ "$m" -gt "$peak_restore" ] && peak_restore=$m
  echo "run $run: save gnu ${gnu_save_t[-1]}s ours ${ours_save_t[-1]}s | restore gnu ${gnu_restore_t[-1]}s ours ${ours_restore_t[-1]}s"
done

# The restored tree must equal the original, or the times mean nothing.
diff -r --no-dereference "$work/reference" "$work/ws/tree" >/dev/null || { echo "restored tree differs!"; exit 1; }

gs=$(printf '%s\n' "${gnu_save_t[@]}" | best); os=$(printf '%s\n' "${ours_save_t[@]}" | best)
gr=$(printf '%s\n' "${gnu_restore_t[@]}" | best); or=$(printf '%s\n' "${ours_restore_t[@]}" | best)
gnu_size=$(stat -c %s "$work/gnu/cache.tzst")
our_archive=$(echo "$work"/store/entries/*.tzst)
our_size=$(stat -c %s "$our_archive")
# `zstd -l` counts the frames: one for GNU's archive, one per 4 MiB of tar for cache-heal's.
frames() { zstd -l "$1" | awk 'NR == 2 { print $1 }'; }
python3 - "$gs" "$os" "$gr" "$or" "$peak_save" "$peak_restore" "$gnu_size" "$our_size" \
  "$(frames "$work/gnu/cache.tzst")" "$(frames "$our_archive")" "$restore_bar" <<'PY'
import sys
gs, os_, gr, or_, ps, pr, gz, oz, gf, of, bar = map(float, sys.argv[1:])
print()
print(f"{'':10}{'GNU tar+zstd':>14}{'cache-heal':>12}{'ratio':>8}  bar")
print(f"{'save':10}{gs:>13.2f}s{os_:>11.2f}s{os_/gs:>8.2f}  <= 1.00 {'ok' if os_/gs <= 1.0 else 'MISSED'}")
print(f"{'restore':10}{gr:>13.2f}s{or_:>11.2f}s{or_/gr:>8.2f}  <= {bar:.2f} {'ok' if or_/gr <= bar else 'MISSED'}")
print(f"{'archive':10}{gz/1e6:>12.1f}MB{oz/1e6:>10.1f}MB{oz/gz:>8.2f}")
print(f"{'frames':10}{gf:>14.0f}{of:>12.0f}")
print(f"peak memory: save {ps/1024:.1f} MiB, restore {pr/1024:.1f} MiB (bar < 100 MiB: {'ok' if max(ps, pr) < 100*1024 else 'MISSED'})")
PY
