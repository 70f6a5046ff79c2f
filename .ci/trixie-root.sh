#!/usr/bin/env bash
# Makes (or completes) a Debian 13 (trixie) root with OBS Studio 30.2, for the tests that
# run the plugin in the OBS between Debian 12's 29.0 and sid's 32 (Enhanced Broadcasting
# arrived in 30.2).
# libobs-dev and the build tools are there for the test that builds the Debian package with
# the release's own headers (tests/linux_package.rs).
# Usage: .ci/trixie-root.sh [ROOT]   (default /var/cache/obs-goaway/trixie); prints the root's path.
set -euo pipefail
exec "$(dirname "$0")/debian-root.sh" trixie "${1:-/var/cache/obs-goaway/trixie}" \
    obs-studio,xvfb,xauth,ca-certificates,fonts-dejavu-core,libobs-dev,gcc,libc6-dev,clang,libclang-dev,pkg-config,dpkg-dev,binutils
