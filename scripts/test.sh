#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then checks
# formatting and lints, then runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "==> actionlint"
.tools/venv/bin/actionlint .github/workflows/*.yml tests/act/e2e.yml
echo "==> zizmor"
.tools/venv/bin/zizmor --offline --quiet . tests/act/e2e.yml
echo "==> cargo test"
cargo test --all-targets --locked
