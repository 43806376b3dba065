#!/usr/bin/env bash
# Runs every test of lastmile: unit, golden, property, crash, replay and tidy tests.
# Installs what the tests need first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo test --workspace
