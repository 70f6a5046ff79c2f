#!/usr/bin/env bash
# Installs the OBS plugin for the current user only, where every OBS build on Linux looks for
# per-user plugins:
#   <OBS config>/plugins/obs-goaway/bin/64bit/obs-goaway.so
#   <OBS config>/plugins/obs-goaway/data/locale/*.ini
# <OBS config> is ${XDG_CONFIG_HOME:-~/.config}/obs-studio unless --config-dir says otherwise.
# No root needed; for OBS from other sources than Debian's packages (OBS's PPA, self-built).
#
# Usage: installer/linux/install-user.sh [--config-dir DIR] [PATH/TO/libobs_goaway.so]
#   Without a .so it builds one (cargo build --release --lib). The locale files come from this
#   repository's locale/. Running it again updates the installation. Everything it creates is
#   listed in plugins/obs-goaway/.install-user-manifest, which uninstall-user.sh reads to remove
#   exactly that.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/prerequisites.sh
. "$here/prerequisites.sh"
root=$OBS_GOAWAY_ROOT
package=obs-goaway

say() { echo "obs-goaway: $*" >&2; }
die() {
    say "$*"
    exit 1
}
usage() {
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

config_dir=${XDG_CONFIG_HOME:-${HOME:?HOME is not set}/.config}/obs-studio
so=
while [ $# -gt 0 ]; do
    case $1 in
    --config-dir) config_dir=${2:?--config-dir needs a directory}; shift 2 ;;
    --config-dir=*) config_dir=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
        [ -z "$so" ] || die "give one plugin file only (see --help)"
        so=$1
        shift
        ;;
    esac
done
[ "$(uname -s)" = Linux ] || die "install-user.sh is for Linux (macOS: installer/macos/)"
[ "$(id -u)" != 0 ] || say "note: installing for root ($config_dir), not for your desktop user"

if [ -z "$so" ]; then
    check_prerequisites build || exit 1
    say "building the plugin (cargo build --release --lib)"
    (cd "$root" && cargo build --release --lib) >&2
    case ${CARGO_TARGET_DIR:-} in
    "") so=$root/target/release/libobs_goaway.so ;;
    /*) so=$CARGO_TARGET_DIR/release/libobs_goaway.so ;;
    *) so=$root/$CARGO_TARGET_DIR/release/libobs_goaway.so ;;
    esac
fi
[ -f "$so" ] || die "no plugin file at $so"
[ "$(head -c 4 "$so" | od -An -c | tr -d ' \n')" = '177ELF' ] || die "$so is not an ELF shared object"
[ -f "$root/locale/en-US.ini" ] || die "$root/locale/en-US.ini is missing"
shopt -s nullglob
locales=("$root"/locale/*.ini)
shopt -u nullglob

base=$config_dir/plugins/$package
manifest=$base/.install-user-manifest
if [ -d "$base" ] && [ ! -f "$manifest" ]; then
    say "note: $base exists but was not made by install-user.sh; its obs-goaway files are replaced"
fi

# What an earlier run installed and created (kept: uninstall removes those too).
declare -A old_files=() created=()
created_order=()
if [ -f "$manifest" ]; then
    while IFS= read -r line; do
        case $line in
        "f "*) old_files[${line#f }]=1 ;;
        "d "*) created[${line#d }]=1; created_order+=("${line#d }") ;;
        esac
    done <"$manifest"
fi

# mkdir -p that records the directories it creates (outermost first).
make_dir() {
    local dir=$1 missing=()
    while [ ! -d "$dir" ]; do
        missing=("$dir" "${missing[@]}")
        dir=$(dirname "$dir")
    done
    for dir in "${missing[@]}"; do
        mkdir "$dir"
        if [ -z "${created[$dir]:-}" ]; then
            created[$dir]=1
            created_order+=("$dir")
        fi
    done
}

# Copies to a temporary name, then renames: a running OBS keeps the old file mapped intact.
put() { # source destination [strip]
    local tmp="$2.tmp.$$"
    if [ "${3:-}" = strip ] && command -v strip >/dev/null 2>&1; then
        strip --strip-unneeded -o "$tmp" "$1"
    else
        cp "$1" "$tmp"
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$2"
    new_files+=("$2")
}

new_files=()
make_dir "$base/bin/64bit"
make_dir "$base/data/locale"
put "$so" "$base/bin/64bit/$package.so" strip
for ini in "${locales[@]}"; do
    put "$ini" "$base/data/locale/$(basename "$ini")"
done

# Files an earlier installation had and this one has not (a removed translation).
declare -A keep=()
for file in "${new_files[@]}"; do keep[$file]=1; done
for file in "${!old_files[@]}"; do
    if [ -z "${keep[$file]:-}" ]; then
        rm -f -- "$file"
        say "removed $file (no longer part of the plugin)"
    fi
done

{
    echo "# Written by obs-goaway's installer/linux/install-user.sh; read by uninstall-user.sh."
    for dir in "${created_order[@]}"; do echo "d $dir"; done
    for file in "${new_files[@]}"; do echo "f $file"; done
} >"$manifest.tmp.$$"
mv -f "$manifest.tmp.$$" "$manifest"

for system in /usr/lib/*/obs-plugins/"$package".so; do
    if [ -e "$system" ]; then
        say "note: the system package is installed too ($system): OBS would load two copies; keep one (sudo apt remove $package, or installer/linux/uninstall-user.sh)"
    fi
done
say "installed for ${USER:-$(id -un 2>/dev/null || id -u)} in $base (${#locales[@]} translation(s)); restart OBS to load it"
echo "$base/bin/64bit/$package.so"
