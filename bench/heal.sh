#!/usr/bin/env bash
# Heal and prune, side by side with uv, on one machine and in one run.
#
#   bash bench/heal.sh            # 24 C-extension sdists, 100 ms added latency per request
#   BENCH_SOURCES=40 BENCH_LATENCY_MS=200 bash bench/heal.sh
#
# 1. Fills a uv cache with Python 3.11 from the local test index (tests/support/index_server.py
#    on 127.0.0.1): BENCH_SOURCES C extensions built from source, so Python 3.12 needs every
#    source back after `uv cache prune --ci`.
# 2. Prune: `uv cache prune --ci` versus `cache-heal prune` on identical copies (5 runs each,
#    median).
# 3. Heal, with the latency switched on: `cache-heal heal` for 3.12 (index pages, and with a
#    pylock.toml), versus uv's own lazy re-download: `uv pip install` on 3.12 with the pruned
#    cache minus the same install with the healed cache (same builds, no downloads). Also the
#    time of one download, to compare heal's wall time with "slowest single" and "sum".
# Not a test: it prints numbers. Needs what scripts/install-test-deps.sh installs and pyenv's
# 3.11 and 3.12. Scratch space: .bench/heal (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${BENCH_SOURCES:-24}"
LATENCY="${BENCH_LATENCY_MS:-100}"
UV="$PWD/.test-deps/uv-0.13.9/bin/uv"
[ -x "$UV" ] || { echo "uv is missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
py() { ls -d "$PYENV_ROOT"/versions/"$1".*/bin/python3 2>/dev/null | sort -V | tail -1; }
PY311="$(py 3.11)"; PY312="$(py 3.12)"
[ -n "$PY311" ] && [ -n "$PY312" ] || { echo "pyenv Python 3.11 and 3.12 are needed" >&2; exit 1; }

echo "==> cargo build --release"
cargo build --release -q
CH="$PWD/target/release/cache-heal"

B="$PWD/.bench/heal"
rm -rf "$B"; mkdir -p "$B/control"
"$PY311" tests/support/make_fixtures.py "$B/files" --bench-ext "$N"
cp .test-deps/index-files/*.whl "$B/files/"

# The index's stdin is a fifo (no helper process to outlive us); it stops through the trap when
# this script ends, or by itself once its parent is gone.
mkfifo "$B/index-stdin"
exec 3<>"$B/index-stdin"
"$PY311" tests/support/index_server.py --files "$B/files" --control "$B/control" \
  --log "$B/requests.log" >"$B/port" <&3 &
INDEX_PID=$!
trap 'kill $INDEX_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$B/port" ] && break; sleep 0.1; done
PORT="$(awk '{print $2}' "$B/port")"
INDEX="http://127.0.0.1:$PORT/simple"

export UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 UV_INDEX_URL="$INDEX" UV_LINK_MODE=copy
pkgs=(); for i in $(seq 0 $((N - 1))); do pkgs+=("$(printf 'benchext%02d==1.0' "$i")"); done
printf '%s\n' "${pkgs[@]}" >"$B/requirements.in"

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "==> filling the cache with Python 3.11 ($N C extensions from source)"
UV_CACHE_DIR="$B/filled" "$UV" venv -q -p "$PY311" "$B/v311"
UV_CACHE_DIR="$B/filled" "$UV" pip install -q -p "$B/v311/bin/python" -r "$B/requirements.in"
UV_CACHE_DIR="$B/filled" "$UV" pip compile -q -p "$PY312" "$B/requirements.in" -o "$B/pylock.toml" || true
echo "    $(du -sh "$B/filled" | cut -f1), $(find "$B/filled" | wc -l) entries"

echo "==> prune: uv cache prune --ci vs cache-heal prune (5 runs each, fresh copies)"
uv_runs=(); ch_runs=()
for run in 1 2 3 4 5; do
  rm -rf "$B/p-uv" "$B/p-ch"; cp -a "$B/filled" "$B/p-uv"; cp -a "$B/filled" "$B/p-ch"; sync
  t0=$(now); "$UV" cache prune --ci --cache-dir "$B/p-uv" -q; t1=$(now)
  "$CH" -q prune --path "$B/p-ch"; t2=$(now)
  uv_runs+=("$(elapsed "$t0" "$t1")"); ch_runs+=("$(elapsed "$t1" "$t2")")
done
PRUNE_UV=$(printf '%s\n' "${uv_runs[@]}" | median)
PRUNE_CH=$(printf '%s\n' "${ch_runs[@]}" | median)
diff <(cd "$B/p-uv" && find . | sort) <(cd "$B/p-ch" && find . | sort) >/dev/null \
  && PRUNE_SAME="identical trees" || PRUNE_SAME="TREES DIFFER"
mv "$B/p-uv" "$B/pruned"; rm -rf "$B/p-ch"

echo "==> heal with ${LATENCY} ms added per request"
echo "$LATENCY" >"$B/control/latency_ms"
files_count() { grep -c ' /files/' "$B/requests.log" || true; }
# Seconds from the first to the last sdist request after line $1 of the log, plus one latency:
# how long the archives took to come in, however they were interleaved with builds.
sdist_span() {
  tail -n +"$(( $1 + 1 ))" "$B/requests.log" | grep ' /files/.*\.tar\.gz' | awk -v lat="$LATENCY" \
    'NR==1 {first=$3} {last=$3} END {if (NR) printf "%.3f", last - first + lat/1000; else print "0"}'
}
lines() { wc -l <"$B/requests.log"; }

t0=$(now); curl -s -o /dev/null "http://127.0.0.1:$PORT/files/benchext00-1.0.tar.gz"; t1=$(now)
ONE=$(elapsed "$t0" "$t1")

cp -a "$B/pruned" "$B/h-index"
before=$(files_count); start_line=$(lines); t0=$(now)
"$CH" -q heal --path "$B/h-index" --python "$PY312" --index-url "$INDEX"
t1=$(now); HEAL_INDEX=$(elapsed "$t0" "$t1"); HEAL_INDEX_FILES=$(( $(files_count) - before ))
HEAL_SPAN=$(sdist_span "$start_line")

HEAL_LOCK=0
if [ -s "$B/pylock.toml" ]; then
  cp -a "$B/pruned" "$B/h-lock"
  t0=$(now)
  "$CH" -q heal --path "$B/h-lock" --python "$PY312" --lock "$B/pylock.toml" --index-url "$INDEX"
  t1=$(now); HEAL_LOCK=$(elapsed "$t0" "$t1")
fi

cp -a "$B/pruned" "$B/lazy"
UV_CACHE_DIR="$B/lazy" "$UV" venv -q -p "$PY312" "$B/v312-lazy"
before=$(files_count); start_line=$(lines); t0=$(now)
UV_CACHE_DIR="$B/lazy" "$UV" pip install -q -p "$B/v312-lazy/bin/python" -r "$B/requirements.in"
t1=$(now); UV_LAZY=$(elapsed "$t0" "$t1"); UV_LAZY_FILES=$(( $(files_count) - before ))
UV_LAZY_SPAN=$(sdist_span "$start_line")

UV_CACHE_DIR="$B/h-index" "$UV" venv -q -p "$PY312" "$B/v312-healed"
before=$(files_count); t0=$(now)
UV_CACHE_DIR="$B/h-index" "$UV" pip install -q -p "$B/v312-healed/bin/python" -r "$B/requirements.in"
t1=$(now); UV_HEALED=$(elapsed "$t0" "$t1"); UV_HEALED_SDISTS=$(( $(files_count) - before ))

printf '\n%-58s %s\n' "measure" "seconds"
printf '%-58s %.3f\n' "uv cache prune --ci (median of 5)" "$PRUNE_UV"
printf '%-58s %.3f  (%s)\n' "cache-heal prune (median of 5)" "$PRUNE_CH" "$PRUNE_SAME"
printf '%-58s %.3f\n' "one sdist download at ${LATENCY} ms latency (curl)" "$ONE"
printf '%-58s %.3f\n' "  x $N, if downloaded one after another" "$(echo "$ONE * $N" | bc -l)"
printf '%-58s %.3f  (%s archives)\n' "cache-heal heal, URLs from the index pages" "$HEAL_INDEX" "$HEAL_INDEX_FILES"
printf '%-58s %s\n' "  first to last archive request, plus one latency" "$HEAL_SPAN"
printf '%-58s %.3f\n' "cache-heal heal, URLs from pylock.toml" "$HEAL_LOCK"
printf '%-58s %.3f  (%s archives re-downloaded)\n' "uv pip install on 3.12, pruned cache (lazy heal + builds)" "$UV_LAZY" "$UV_LAZY_FILES"
printf '%-58s %s\n' "  first to last sdist request, plus one latency" "$UV_LAZY_SPAN"
printf '%-58s %.3f  (%s downloads)\n' "uv pip install on 3.12, healed cache (builds only)" "$UV_HEALED" "$UV_HEALED_SDISTS"
printf '%-58s %.3f\n' "  => uv's lazy re-download costs about" "$(echo "$UV_LAZY - $UV_HEALED" | bc -l)"
