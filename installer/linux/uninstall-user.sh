#!/usr/bin/env bash
# Removes what installer/linux/install-user.sh installed for the current user: the files and
# directories listed in <OBS config>/plugins/obs-goaway/.install-user-manifest, nothing else
# (directories only when empty). Running it again, or with nothing installed, does nothing.
#
# Usage: installer/linux/uninstall-user.sh [--config-dir DIR]
#   <OBS config> is ${XDG_CONFIG_HOME:-~/.config}/obs-studio unless --config-dir says otherwise.
set -euo pipefail

package=obs-goaway
say() { echo "obs-goaway: $*" >&2; }
die() {
    say "$*"
    exit 1
}

config_dir=${XDG_CONFIG_HOME:-${HOME:?HOME is not set}/.config}/obs-studio
while [ $# -gt 0 ]; do
    case $1 in
    --config-dir) config_dir=${2:?--config-dir needs a directory}; shift 2 ;;
    --config-dir=*) config_dir=${1#*=}; shift ;;
    -h | --help) sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

base=$config_dir/plugins/$package
manifest=$base/.install-user-manifest
if [ ! -f "$manifest" ]; then
    if [ -e "$base" ]; then
        die "$base was not installed by install-user.sh (no manifest): remove it yourself if you want it gone"
    fi
    say "nothing to remove: obs-goaway is not installed in $config_dir/plugins"
    exit 0
fi

files=()
dirs=()
while IFS= read -r line; do
    case $line in
    "f "*) files+=("${line#f }") ;;
    "d "*) dirs+=("${line#d }") ;;
    esac
done <"$manifest"

removed=0
for file in "${files[@]}"; do
    if [ -e "$file" ] || [ -L "$file" ]; then
        rm -f -- "$file"
        removed=$((removed + 1))
    fi
done
rm -f -- "$manifest"

# Deepest first; a directory that holds something else stays.
kept=()
for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    dir=${dirs[i]}
    [ -d "$dir" ] || continue
    rmdir -- "$dir" 2>/dev/null || kept+=("$dir")
done
for dir in "${kept[@]}"; do
    say "kept $dir: it holds files install-user.sh did not put there"
done
say "removed obs-goaway from $config_dir/plugins ($removed file(s)); restart OBS to unload it"
