#!/usr/bin/env bash
# Installs the cache-heal binary for the runner the action runs on, and prints its path (also
# set as the step output `bin`).
#
# In order:
#   1. `CACHE_HEAL_BINARY` (the action's `binary` input): use that binary as it is.
#   2. A release: when the action's ref (or `CACHE_HEAL_VERSION`, the `version` input) names the
#      release recorded in `dist/checksums.txt` (`v1`, `v1.2` and `v1.2.3` all name `v1.2.3`),
#      download the asset for RUNNER_OS/RUNNER_ARCH from the action's own repository, check its
#      sha256 against `dist/checksums.txt`, and keep it in the runner's tool cache
#      (`$RUNNER_TOOL_CACHE/cache-heal/<version>/<arch>`, the toolkit's layout).
#   3. Otherwise (the action pinned to a commit or a branch): build it from the action's source
#      with `cargo build --release --locked`.
#
# A download whose sha256 differs from `dist/checksums.txt` is refused, never run. The checksum
# file comes from the action's own checkout, so what runs is pinned by the ref the workflow
# uses, not by whatever the release page serves today.
#
# Environment (all optional): CACHE_HEAL_BINARY, CACHE_HEAL_VERSION, CACHE_HEAL_ACTION_REF,
# CACHE_HEAL_ACTION_REPOSITORY, CACHE_HEAL_ACTION_PATH (default: this script's repository),
# CACHE_HEAL_DOWNLOAD_BASE (default: https://github.com/<repository>/releases/download; tests
# point it at a local server), RUNNER_OS, RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP.
set -euo pipefail

fail() {
  if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
    echo "::error title=cache-heal install::$1" >&2
  fi
  echo "error: $1" >&2
  if [ -n "${2:-}" ]; then
    printf '\nhint: %s\n' "$2" >&2
  fi
  exit 1
}

say() { echo "$*" >&2; }

warn() {
  if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
    echo "::warning title=cache-heal install::$1" >&2
  else
    echo "warning: $1" >&2
  fi
}

set_output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    local delimiter="ghadelimiter_${RANDOM}${RANDOM}${RANDOM}"
    printf '%s<<%s\n%s\n%s\n' "$1" "$delimiter" "$2" "$delimiter" >>"$GITHUB_OUTPUT"
  fi
  printf '%s\n' "$2"
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    fail "neither \`sha256sum\` nor \`shasum\` is installed, so the download cannot be checked"
  fi
}

action_path="${CACHE_HEAL_ACTION_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
checksums="$action_path/dist/checksums.txt"
os="${RUNNER_OS:-$(uname -s)}"
arch="${RUNNER_ARCH:-$(uname -m)}"
exe=""

# 1. A binary the workflow installed itself.
if [ -n "${CACHE_HEAL_BINARY:-}" ]; then
  [ -x "$CACHE_HEAL_BINARY" ] || fail "\`binary\` \`$CACHE_HEAL_BINARY\` is not an executable file"
  "$CACHE_HEAL_BINARY" --version >/dev/null 2>&1 ||
    fail "\`binary\` \`$CACHE_HEAL_BINARY\` did not run (\`--version\` failed)"
  set_output bin "$CACHE_HEAL_BINARY"
  exit 0
fi

case "$os/$arch" in
  Linux/X64 | Linux/x86_64) target=x86_64-unknown-linux-musl ;;
  Linux/ARM64 | Linux/aarch64) target=aarch64-unknown-linux-musl ;;
  macOS/X64 | Darwin/x86_64) target=x86_64-apple-darwin ;;
  macOS/ARM64 | Darwin/arm64) target=aarch64-apple-darwin ;;
  Windows/X64) target=x86_64-pc-windows-msvc exe=".exe" ;;
  *) target="" ;;
esac

ref="${CACHE_HEAL_VERSION:-${CACHE_HEAL_ACTION_REF:-${GITHUB_ACTION_REF:-}}}"
released="$(sed -n 's/^# version: *//p' "$checksums" 2>/dev/null | head -n1)"
tag=""
if [ -n "$ref" ] && [ -n "$released" ] && [ "$released" != "none" ]; then
  case "$released" in
    "$ref" | "$ref".*) tag="$released" ;;
  esac
fi
if [ -n "${CACHE_HEAL_VERSION:-}" ] && [ -z "$tag" ]; then
  fail "\`version\` \`$CACHE_HEAL_VERSION\` is not the release this copy of the action records (\`${released:-none}\`), so there is no checksum to check it against" \
    "leave \`version\` empty to use the action's own release, or pin the action to \`$CACHE_HEAL_VERSION\`"
fi

# 2. The release asset, checked against dist/checksums.txt.
if [ -n "$tag" ] && [ -n "$target" ]; then
  asset="cache-heal-$target.tar.gz"
  expected="$(awk -v a="$asset" '$2 == a { print $1 }' "$checksums")"
  [ -n "$expected" ] || fail "\`dist/checksums.txt\` records release \`$tag\` but has no sha256 for \`$asset\`"
  tool_cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/tool-cache}"
  arch_dir="$(printf '%s' "$arch" | tr '[:upper:]' '[:lower:]')"
  dir="$tool_cache/cache-heal/${tag#v}/$arch_dir"
  marker="$tool_cache/cache-heal/${tag#v}/$arch_dir.complete"
  if [ -x "$dir/cache-heal$exe" ] && [ "$(cat "$marker" 2>/dev/null)" = "$expected" ]; then
    say "cache-heal $tag for $target is in the tool cache"
    set_output bin "$dir/cache-heal$exe"
    exit 0
  fi
  repository="${CACHE_HEAL_ACTION_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}"
  base="${CACHE_HEAL_DOWNLOAD_BASE:-https://github.com/$repository/releases/download}"
  url="$base/$tag/$asset"
  scratch="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/cache-heal-install.XXXXXX")"
  trap 'rm -rf "$scratch"' EXIT
  say "Downloading \`$url\`"
  if curl --fail --silent --show-error --location --retry 3 --output "$scratch/$asset" "$url"; then
    actual="$(sha256_of "$scratch/$asset")"
    if [ "$actual" != "$expected" ]; then
      fail "Refused \`$asset\` from \`$url\`: its sha256 is $actual but \`dist/checksums.txt\` says $expected; nothing was installed" \
        "a release asset that does not match the checksums committed with the tag was changed after release; report it to the action's maintainers"
    fi
    mkdir -p "$scratch/unpacked"
    tar -xzf "$scratch/$asset" -C "$scratch/unpacked"
    [ -f "$scratch/unpacked/cache-heal$exe" ] || fail "\`$asset\` holds no \`cache-heal$exe\`"
    mkdir -p "$dir"
    mv -f "$scratch/unpacked/cache-heal$exe" "$dir/cache-heal$exe"
    chmod +x "$dir/cache-heal$exe"
    printf '%s' "$expected" >"$marker"
    say "Installed cache-heal $tag for $target (sha256 $expected)"
    set_output bin "$dir/cache-heal$exe"
    exit 0
  fi
  warn "No release asset at \`$url\`; building cache-heal from the action's source instead"
elif [ -n "$tag" ]; then
  warn "No release build for $os $arch; building cache-heal from the action's source instead"
else
  say "The action ref \`${ref:-(none)}\` is not a release (\`dist/checksums.txt\` records \`${released:-none}\`); building cache-heal from source"
fi

# 3. Build from the action's source.
command -v cargo >/dev/null 2>&1 ||
  fail "cannot build cache-heal from source: \`cargo\` is not installed" \
    "pin the action to a release tag, or install Rust before this step"
target_dir="${RUNNER_TEMP:-$action_path}/cache-heal-target"
say "Running \`cargo build --release --locked\` in \`$action_path\`"
cargo build --release --locked --manifest-path "$action_path/Cargo.toml" --target-dir "$target_dir" >&2 ||
  fail "\`cargo build --release --locked\` failed in \`$action_path\`"
[ -x "$target_dir/release/cache-heal$exe" ] ||
  fail "\`cargo build\` finished but left no \`$target_dir/release/cache-heal$exe\`"
set_output bin "$target_dir/release/cache-heal$exe"
