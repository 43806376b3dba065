#!/usr/bin/env bash
# Fuzzes the Babel decoder (fuzz/fuzz_targets/babel_decode.rs) for FUZZ_SECONDS seconds
# (default 60). Exits nonzero if libFuzzer finds a crash; the input that crashed is left in
# fuzz/artifacts/babel_decode/. Installs the nightly toolchain and cargo-fuzz if missing.
# Seeds (packets captured from babeld and BIRD, the route-vector example) are in
# fuzz/seeds/babel_decode/; what libFuzzer finds goes to fuzz/corpus/babel_decode/, which git
# ignores and later runs start from.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version > /dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
mkdir -p fuzz/corpus/babel_decode
exec cargo +nightly fuzz run babel_decode fuzz/corpus/babel_decode fuzz/seeds/babel_decode -- \
    -max_total_time="${FUZZ_SECONDS:-60}"
