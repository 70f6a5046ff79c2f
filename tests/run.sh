#!/usr/bin/env bash
# The whole test suite on a Debian 12 machine, from nothing: installs the real peers the
# tests run against (nginx-rtmp, ffmpeg, OBS Studio 29.0.2, Xvfb, a Debian sid root with
# OBS 32.2.2 and wine, a Debian trixie root with OBS 30.2.3, the Windows cross toolchain,
# lintian), builds the plugin, then runs `cargo test`. Needs root (apt, chroot, mounts);
# run it with sudo otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh installs packages and runs OBS in a chroot: run it as root (sudo tests/run.sh)" >&2
    exit 1
fi
step() { printf '\n==> %s\n' "$*"; }

export DEBIAN_FRONTEND=noninteractive
# Packages must not start services (nginx's default site) on a test machine.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
fi
step "installing test peers and build tools (apt)"
apt-get update -q
apt-get install -y -q --no-install-recommends \
    ca-certificates python3 gcc clang libclang-dev pkg-config binutils \
    ffmpeg nginx libnginx-mod-rtmp libnginx-mod-stream \
    obs-studio libobs-dev xvfb xauth imagemagick xdotool util-linux \
    mmdebstrap dpkg-dev lintian gcc-mingw-w64-x86-64 nsis nftables iproute2

step "Rust target for the Windows build"
if command -v rustup >/dev/null; then
    rustup target add x86_64-pc-windows-gnu
else
    echo "rustup not found: the Windows installer test will fail (it needs x86_64-pc-windows-gnu)" >&2
fi

step "Debian sid root with OBS 32.2.2 and wine"
.ci/sid-root.sh

step "Debian trixie root with OBS 30.2.3"
.ci/trixie-root.sh

step "building the plugin (release: what the OBS tests load)"
cargo build --release

step "cargo test"
cargo test --no-fail-fast
