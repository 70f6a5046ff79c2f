#!/usr/bin/env bash
# Makes (or completes) a Debian sid root with OBS Studio 32.x, ffmpeg/ffprobe (which read
# Enhanced RTMP FLV) and wine 10, for the tests that run the plugin in a newer OBS than
# Debian 12's and the Windows installer under wine.
# Usage: .ci/sid-root.sh [ROOT]   (default /var/cache/obs-goaway/sid); prints the root's path.
set -euo pipefail
root=${1:-/var/cache/obs-goaway/sid}
packages=obs-studio,xvfb,xauth,ca-certificates,ffmpeg,fonts-dejavu-core,wine,wine64
apt_opts=(-o Acquire::Check-Valid-Until=false)

if [ -x "$root/usr/bin/obs" ]; then
    missing=()
    for p in ${packages//,/ }; do
        chroot "$root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "sid-root: adding ${missing[*]} to $root" >&2
        chroot "$root" apt-get "${apt_opts[@]}" update >&2
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
            --no-install-recommends "${missing[@]}" >&2
    fi
    echo "$root"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "sid-root: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
rm -rf "$root.tmp"
mkdir -p "$(dirname "$root")"
echo "sid-root: creating a Debian sid root with $packages (a minute or two)" >&2
mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$packages" sid "$root.tmp" >&2
rm -rf "$root"
mv "$root.tmp" "$root"
echo "$root"
