#!/usr/bin/env bash
# The main job until the live mesh exists: the routing simulator. Real Babel machines (the
# same code a router runs) on a simulated network of tunnels in virtual time; a link fails and
# recovers, a node crashes and reboots. Prints convergence times, control traffic per node,
# route table size and memory per route, then the same as `figure:` lines.
# Extra arguments go to `lastmile sim` (try `--help`), e.g. `scripts/sim.sh --topology
# geometric --nodes 200 --loss 0.02`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo build --release --bin lastmile
"${CARGO_TARGET_DIR:-target}/release/lastmile" sim "$@"
