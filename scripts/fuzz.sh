#!/usr/bin/env bash
# Fuzzes every decoder of untrusted bytes for FUZZ_SECONDS seconds each (default 60):
# - babel_decode: Babel packets from the link (fuzz/fuzz_targets/babel_decode.rs);
# - event_decode: event records read from flash (fuzz/fuzz_targets/event_decode.rs);
# - flash_scan: a whole directory of segment files, scanned and recovered
#   (fuzz/fuzz_targets/flash_scan.rs);
# - discovery_decode: discovery datagrams from the link, decoded and handed to a discovery
#   machine (fuzz/fuzz_targets/discovery_decode.rs).
# Exits nonzero if libFuzzer finds a crash; the input that crashed is left in
# fuzz/artifacts/TARGET/. Installs the nightly toolchain and cargo-fuzz if missing. Seeds are in
# fuzz/seeds/TARGET/ (packets captured from babeld and BIRD, golden frames and segments); what
# libFuzzer finds goes to fuzz/corpus/TARGET/, which git ignores and later runs start from.
# `scripts/fuzz.sh TARGET...` runs only those.
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
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(babel_decode event_decode flash_scan discovery_decode)
fi
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
    echo "fuzz: $target for ${FUZZ_SECONDS:-60} s"
    cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="${FUZZ_SECONDS:-60}"
done
