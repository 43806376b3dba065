#!/usr/bin/env bash
# Installs what lastmile's build and tests need on a Debian machine, idempotently.
# Safe to run again: it only installs what is missing.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The network-namespace tests (tests/netns_*.rs): ip and tc, nft,
# sysctl. Root's sbin may be missing from PATH in a non-login shell, so look there too.
have_tool() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
{ have_tool ip && have_tool tc; } || need_apt+=(iproute2)
have_tool nft || need_apt+=(nftables)
have_tool sysctl || need_apt+=(procps)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install: ${need_apt[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# babeld, a Babel peer for the interop tests, which run it inside network namespaces only.
# Debian's package ships an init script that is enabled and started at install: a babeld in
# the host namespace would speak Babel on the host's interfaces and install routes there. So
# it is installed with a policy-rc.d that forbids starting services (ours only for the
# install, and removed only if we created it), and its service is kept disabled.
if ! have_tool babeld; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install: babeld" >&2
        exit 1
    fi
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# Temporary (lastmile scripts/setup.sh): start no service while babeld installs.\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq babeld
    if [ -n "$created_policy" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi
babeld_enabled() {
    ls /etc/rc[2345].d/S[0-9][0-9]babeld >/dev/null 2>&1 && return 0
    [ -d /run/systemd/system ] && systemctl is-enabled --quiet babeld 2>/dev/null
}
if babeld_enabled; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: warning: the babeld service is enabled; as root: update-rc.d babeld disable" >&2
    else
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --quiet babeld 2>/dev/null || true
        fi
        if command -v update-rc.d >/dev/null 2>&1; then
            update-rc.d babeld disable >/dev/null 2>&1 || true
        fi
    fi
fi

if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

required=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n1)
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$required" "$have" | sort -V | head -n1)" != "$required" ]; then
    if command -v rustup >/dev/null 2>&1; then
        rustup toolchain install "$required" --profile minimal --component clippy,rustfmt
        rustup default "$required"
    else
        echo "setup: rustc $have is older than the required $required" >&2
        exit 1
    fi
fi

# The chain for the integration tests (tests/anvil.rs): anvil from npm, and solcjs to build the
# test's ERC-20 (tests/contracts/Token.sol), both in the project-local .tools/ so tests find
# them at a known path. Quiet when already there.
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
anvil_version="1.7.1"
solc_version="0.8.28"
have_pkg() { # name version
    [ -f "$tools/node_modules/$1/package.json" ] &&
        grep -q "\"version\": \"$2\"" "$tools/node_modules/$1/package.json"
}
if ! have_pkg @foundry-rs/anvil-linux-amd64 "$anvil_version" || ! have_pkg solc "$solc_version"; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup: npm is needed to install anvil and solc (apt-get install nodejs npm)" >&2
        exit 1
    fi
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-audit --no-fund --no-save --loglevel=error \
        "@foundry-rs/anvil-linux-amd64@$anvil_version" "solc@$solc_version" >/dev/null
fi
token_src="$root/tests/contracts/Token.sol"
token_bin="$tools/Token.bin"
if [ ! -s "$token_bin" ] || [ "$token_src" -nt "$token_bin" ]; then
    out="$(mktemp -d)"
    "$tools/node_modules/.bin/solcjs" --bin --optimize --base-path "$root/tests/contracts" \
        --output-dir "$out" "$token_src" >/dev/null
    mv "$out/Token_sol_Token.bin" "$token_bin.tmp"
    mv "$token_bin.tmp" "$token_bin"
    rm -rf "$out"
fi
