#!/usr/bin/env bash
# Builds the OBS plugin's package for this machine and prints the package's path as the last
# line on stdout (progress and errors go to stderr).
#   Linux (Debian/Ubuntu): installer/linux/build-deb.sh -> target/installer/obs-goaway_<version>_<arch>.deb
#   macOS:                 installer/macos/build.sh + package.sh -> target/installer/obs-goaway-<version>-macos.pkg
# Missing prerequisites are reported one per line, naming the package to install, before any
# build starts.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case $(uname -s) in
Linux)
    if ! command -v dpkg >/dev/null 2>&1; then
        echo "obs-goaway: only a Debian package (.deb) is built on Linux and this system has no dpkg; install the plugin per user instead: installer/linux/install-user.sh" >&2
        exit 1
    fi
    exec "$here/linux/build-deb.sh" "$@"
    ;;
Darwin)
    "$here/macos/build.sh" >&2
    exec "$here/macos/package.sh" "$@"
    ;;
*)
    echo "obs-goaway: no package is built on $(uname -s) by this script (Linux: .deb, macOS: .pkg)" >&2
    exit 1
    ;;
esac
