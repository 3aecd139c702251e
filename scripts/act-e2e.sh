#!/usr/bin/env bash
# The act end-to-end test (tests/act_e2e.rs; `cargo test` runs it too), with its report on
# the terminal: which github-script it used, each run's outputs line and how long it took.
#
# usage: scripts/act-e2e.sh [GITHUB_SCRIPT_DIR]
#   GITHUB_SCRIPT_DIR holds the real actions/github-script at the commit action.yml pins;
#   without it the test uses the stand-in in tests/act/github-script.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
  [ -f "$1/action.yml" ] || { echo "error: no action.yml in \`$1\`" >&2; exit 1; }
  CACHE_HEAL_E2E_GITHUB_SCRIPT="$(cd "$1" && pwd)"
  export CACHE_HEAL_E2E_GITHUB_SCRIPT
fi
exec cargo test --locked --test act_e2e -- --nocapture
