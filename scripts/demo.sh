#!/usr/bin/env bash
# The demo of what exists today: the usage machine writes a real event log on disk; we kill
# it with SIGKILL twice at arbitrary moments, start it again (it recovers, and the restart
# looks like a router reboot, so its counters reset), then replay the log with the replay
# tool: check every frame, fold the state, and trace the last records.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo build --release --workspace --bins

dir=${LASTMILE_DEMO_DIR:-$(mktemp -d /tmp/lastmile-demo.XXXXXX)}
bin=target/release
echo "== data directory: $dir"

for round in 1 2; do
    echo "== round $round: running the node, then SIGKILL"
    "$bin/lastmile" demo --dir "$dir" --links 5 --seconds 30 > "$dir.round$round.out" &
    pid=$!
    sleep 3
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    head -n 2 "$dir.round$round.out"
    echo "   ... $(grep -c '^report' "$dir.round$round.out") usage records reported durable, last: $(grep '^durable' "$dir.round$round.out" | tail -n1)"
done

echo "== round 3: a clean run that stops by itself"
"$bin/lastmile" demo --dir "$dir" --links 5 --seconds 2 > "$dir.round3.out"
head -n 2 "$dir.round3.out"

echo "== replay check"
"$bin/replay" check "$dir"
echo "== replay state"
"$bin/replay" state "$dir"
echo "== replay trace (last 8 records)"
"$bin/replay" trace "$dir" | tail -n 8
rm -f "$dir".round*.out
echo "== the log stays in $dir"
