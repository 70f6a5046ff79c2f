#!/usr/bin/env bash
# Makes (or completes) a Debian sid root with OBS Studio 32.x, ffmpeg/ffprobe (which read
# Enhanced RTMP FLV) and wine 10, for the tests that run the plugin in a newer OBS than
# Debian 12's and the Windows installer under wine.
# libobs-dev and the build tools are there for the test that builds the Debian package with
# the release's own headers (tests/linux_package.rs).
# Usage: .ci/sid-root.sh [ROOT]   (default /var/cache/obs-goaway/sid); prints the root's path.
set -euo pipefail
exec "$(dirname "$0")/debian-root.sh" sid "${1:-/var/cache/obs-goaway/sid}" \
    obs-studio,xvfb,xauth,ca-certificates,ffmpeg,fonts-dejavu-core,libobs-dev,gcc,libc6-dev,clang,libclang-dev,pkg-config,dpkg-dev,binutils,wine,wine64
