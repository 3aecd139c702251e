#!/usr/bin/env bash
# Decides the `path` the action caches and sets it as the step output `path`.
#
#   cache-path.sh restore   the `path` input, else the uv cache directory (`UV_CACHE_DIR`, else
#                           what `uv cache dir` prints, else uv's default for the OS); it is
#                           also recorded under RUNNER_TEMP for the save action
#   cache-path.sh save      the `path` input, else what the restore action recorded, else the
#                           same default as restore
#
# The save action must use the very same text as the restore action: the path lines are part
# of the entry version, and the restore step's state is found by that version. Recomputing it
# could differ (uv installed between the two steps changes what `uv cache dir` says), so the
# save action reads what the restore action decided.
set -euo pipefail

mode="${1:?usage: cache-path.sh restore|save}"
record="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/cache-heal/action-path"

default_path() {
  if [ -n "${UV_CACHE_DIR:-}" ]; then
    printf '%s' "$UV_CACHE_DIR"
  elif command -v uv >/dev/null 2>&1 && dir="$(uv cache dir 2>/dev/null)" && [ -n "$dir" ]; then
    printf '%s' "$dir"
  else
    case "${RUNNER_OS:-$(uname -s)}" in
      Windows) printf '%s' "${LOCALAPPDATA:?LOCALAPPDATA is not set}\\uv\\cache" ;;
      *) printf '%s' "${XDG_CACHE_HOME:-$HOME/.cache}/uv" ;;
    esac
  fi
}

if [ -n "${INPUT_PATH:-}" ]; then
  path="$INPUT_PATH"
elif [ "$mode" = save ] && [ -s "$record" ]; then
  path="$(cat "$record")"
else
  path="$(default_path)"
fi

if [ "$mode" = restore ]; then
  mkdir -p "$(dirname "$record")"
  printf '%s' "$path" >"$record"
fi

echo "cache-heal: caching $(printf '%s' "$path" | tr '\n' ' ')" >&2
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  delimiter="ghadelimiter_${RANDOM}${RANDOM}${RANDOM}"
  printf 'path<<%s\n%s\n%s\n' "$delimiter" "$path" "$delimiter" >>"$GITHUB_OUTPUT"
fi
