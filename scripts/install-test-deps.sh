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

# Node 20 and npm: the GitHub cache store is tested against the official @actions/cache client
# and against Azurite (Microsoft's blob emulator), both from npm at the versions pinned in
# tests/node/package-lock.json.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
# The stamp is the lock file npm last installed from, so a changed lock reinstalls.
if ! cmp -s tests/node/package-lock.json tests/node/node_modules/.cache-heal-installed-lock; then
  echo "==> npm ci --prefix tests/node"
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
  cp tests/node/package-lock.json tests/node/node_modules/.cache-heal-installed-lock
fi
