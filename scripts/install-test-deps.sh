#!/usr/bin/env bash
# Installs what the tests use besides Rust: the reference tools they compare against. Each
# step is idempotent, so running it on a machine that has everything costs a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# GNU tar and zstd: the archive interop tests run the exact commands actions/cache runs.
apt_install tar zstd time
