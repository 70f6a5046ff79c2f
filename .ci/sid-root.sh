#!/usr/bin/env bash
# Makes (or reuses) a Debian sid root with OBS Studio 32.x, ffmpeg/ffprobe (for Enhanced RTMP
# FLV) and wine, for the tests that run the plugin in a newer OBS than Debian 12's.
# Usage: .ci/sid-root.sh [ROOT]   (default /var/cache/obs-goaway/sid); prints the root's path.
set -euo pipefail
root=${1:-/var/cache/obs-goaway/sid}
packages=obs-studio,xvfb,xauth,ca-certificates,ffmpeg,fonts-dejavu-core,wine,wine64
if [ -x "$root/usr/bin/obs" ] && [ -x "$root/usr/bin/ffprobe" ]; then
    echo "$root"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "sid-root: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
rm -rf "$root.tmp"
mkdir -p "$(dirname "$root")"
echo "sid-root: creating a Debian sid root with $packages (about a minute)" >&2
mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$packages" sid "$root.tmp" >&2
rm -rf "$root"
mv "$root.tmp" "$root"
echo "$root"
