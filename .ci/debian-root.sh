#!/usr/bin/env bash
# Makes (or completes) a Debian root of SUITE with PACKAGES (comma-separated) at ROOT, with
# mmdebstrap, for the tests that run software newer than Debian 12's in a chroot.
# Usage: .ci/debian-root.sh SUITE ROOT PACKAGES; prints the root's path.
set -euo pipefail
suite=$1 root=$2 packages=$3
apt_opts=(-o Acquire::Check-Valid-Until=false)

if [ -x "$root/usr/bin/obs" ]; then
    missing=()
    for p in ${packages//,/ }; do
        chroot "$root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$suite-root: adding ${missing[*]} to $root" >&2
        chroot "$root" apt-get "${apt_opts[@]}" update >&2
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
            --no-install-recommends "${missing[@]}" >&2
    fi
    echo "$root"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "$suite-root: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
rm -rf "$root.tmp"
mkdir -p "$(dirname "$root")"
echo "$suite-root: creating a Debian $suite root with $packages (a minute or two)" >&2
mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$packages" "$suite" "$root.tmp" >&2
rm -rf "$root"
mv "$root.tmp" "$root"
echo "$root"
