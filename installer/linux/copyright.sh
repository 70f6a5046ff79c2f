#!/usr/bin/env bash
# Writes the package's machine-readable copyright file (DEP-5) to stdout: obs-goaway itself,
# then every Rust crate compiled into obs-goaway.so (normal dependencies for TRIPLE, proc
# macros excluded), with the copyright lines of the crate's licence files (or its Cargo.toml
# authors) and its licence. Licence texts come from /usr/share/common-licenses or from
# installer/linux/licenses/<SPDX id>; an id with neither fails the build (add its text there).
#
# Usage: copyright.sh TRIPLE   (run after cargo fetched or built the crates)
set -euo pipefail
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
triple=${1:?usage: copyright.sh TRIPLE}
registry=${CARGO_HOME:-$HOME/.cargo}/registry/src

die() {
    echo "obs-goaway: $*" >&2
    exit 1
}

# "name vX.Y.Z[ (path)]<TAB>licence", one line per crate.
crates=$(cd "$root" && cargo tree --offline --edges normal,no-proc-macro --target "$triple" \
    --prefix none --format $'{p}\t{l}' | sed 's/ (\*)$//' | LC_ALL=C sort -u) ||
    die "cargo tree failed (build the plugin first so that every crate is downloaded)"

# SPDX expression -> DEP-5 syntax ("or", "and", "with NAME exception").
dep5_license() {
    sed -e 's#/# OR #g' -e 's/ OR / or /g' -e 's/ AND / and /g' \
        -e 's/ WITH \([A-Za-z0-9.+]*\)-exception/ with \1 exception/g'
}

# The copyright lines of a crate's licence files, else its authors, else "the NAME authors".
holders() {
    local name=$1 dir=$2 lines='' file files=()
    shopt -s nullglob nocaseglob
    for file in "$dir"/licen[cs]e* "$dir"/copying* "$dir"/copyright* "$dir"/notice* "$dir"/unlicense*; do
        [ -f "$file" ] && files+=("$file")
    done
    shopt -u nullglob nocaseglob
    if [ ${#files[@]} -gt 0 ]; then
        # "Copyright" at the start of a line (after comment marks), without licence
        # boilerplate; "(c)"/"©" dropped; each holder once, in order.
        lines=$(LC_ALL=C awk '
            {
                line = $0
                sub(/^[[:space:]\/#*;-]*/, "", line)
                if (line !~ /^Copyright[[:space:]]/) next
                if (line ~ /\[yyyy\]|\{yyyy\}|<year>|Free Software Foundation|^Copyright (notice|license|and|holder)/) next
                sub(/^Copyright[[:space:]]*/, "", line)
                sub(/^(\(c\)|\(C\)|\xc2\xa9)[[:space:]]*/, "", line)
                sub(/[[:space:]]+$/, "", line)
                if (line != "" && !seen[line]++) print line
            }' "${files[@]}")
    fi
    if [ -z "$lines" ]; then
        lines=$(awk '/^authors *= *\[/ { on = 1 } on { print } on && /\]/ { exit }' "$dir/Cargo.toml" |
            grep -o '"[^"]*"' | tr -d '"') || true
    fi
    [ -n "$lines" ] || lines="the $name authors"
    printf '%s\n' "$lines"
}

# Prints "Field: first line" and indents the rest (DEP-5 continuation lines).
field() {
    local name=$1 first=1 line
    while IFS= read -r line; do
        if [ $first = 1 ]; then
            printf '%s: %s\n' "$name" "$line"
            first=0
        else
            printf ' %s\n' "$line"
        fi
    done
}

# A licence text as DEP-5 paragraph body lines (blank lines become " .").
body() {
    sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'
}

cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: obs-goaway
Comment: obs-goaway.so is compiled from the obs-goaway sources and from the Rust crates
 listed below, which Cargo fetched from crates.io and linked in statically;
 "crates/NAME-VERSION/*" stands for the sources of crate NAME at VERSION. Their
 licences are all compatible with the GPL. Because the obs-wrapper crate is
 licensed under GPL-2.0 only, the plugin as a whole is distributed under the
 GNU GPL version 2. At run time the plugin uses libobs (GPL-2.0-or-later),
 which is packaged separately.

Files: *
Copyright: 2026 obs-goaway developers
License: GPL-2.0-or-later
EOF

declare -A needed=([GPL-2.0-or-later]=1)
while IFS=$'\t' read -r package licence; do
    [ -n "$package" ] || continue
    name=${package%% *}
    rest=${package#* v}
    version=${rest%% *}
    path=
    case $package in
    *" ("*")") path=${package##* (}; path=${path%)} ;;
    esac
    if [ -n "$path" ]; then
        # Crates of this repository (obs-goaway, src/obs-sys) are covered by "Files: *".
        case $path in "$root" | "$root"/*) continue ;; esac
        dir=$path
    else
        dir=
        for candidate in "$registry"/*/"$name-$version"; do
            if [ -d "$candidate" ]; then
                dir=$candidate
                break
            fi
        done
        [ -n "$dir" ] || die "cannot find the sources of crate $name $version under $registry (cargo fetch)"
    fi
    [ -n "$licence" ] || die "crate $name $version declares no licence: check it and describe it in installer/linux/copyright.sh"
    licence=$(printf '%s\n' "$licence" | dep5_license)
    printf '\nFiles: crates/%s-%s/*\n' "$name" "$version"
    holders "$name" "$dir" | field Copyright
    printf 'License: %s\n' "$licence"
    # Every alternative and conjunct needs a licence paragraph.
    while IFS= read -r term; do
        [ -n "$term" ] && needed[$term]=1
    done < <(printf '%s\n' "$licence" | tr -d '()' | sed -e 's/ or /\n/g' -e 's/ and /\n/g')
done <<<"$crates"

common() {
    printf ' On Debian systems, the complete text of the %s can be found in\n /usr/share/common-licenses/%s.\n' "$1" "$2"
}

readarray -t ids < <(printf '%s\n' "${!needed[@]}" | LC_ALL=C sort)
for id in "${ids[@]}"; do
    printf '\nLicense: %s\n' "$id"
    case $id in
    GPL-2.0-or-later | GPL-2.0+)
        cat <<'EOF'
 This program is free software; you can redistribute it and/or modify it under
 the terms of the GNU General Public License as published by the Free Software
 Foundation; either version 2 of the License, or (at your option) any later
 version.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT
 ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS
 FOR A PARTICULAR PURPOSE. See the GNU General Public License for more details.
 .
EOF
        common "GNU General Public License version 2" GPL-2
        ;;
    GPL-2.0 | GPL-2.0-only)
        cat <<'EOF'
 This program is free software; you can redistribute it and/or modify it under
 the terms of the GNU General Public License version 2 as published by the Free
 Software Foundation.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT
 ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS
 FOR A PARTICULAR PURPOSE. See the GNU General Public License for more details.
 .
EOF
        common "GNU General Public License version 2" GPL-2
        ;;
    Apache-2.0) common "Apache License version 2.0" Apache-2.0 ;;
    MPL-2.0) common "Mozilla Public License version 2.0" MPL-2.0 ;;
    CC0-1.0) common "Creative Commons CC0 1.0 Universal licence" CC0-1.0 ;;
    "Apache-2.0 with LLVM exception")
        common "Apache License version 2.0" Apache-2.0
        echo " ."
        echo " ---- LLVM Exceptions to the Apache 2.0 License ----"
        echo " ."
        body <"$here/licenses/LLVM-exception"
        ;;
    *)
        [ -f "$here/licenses/$id" ] ||
            die "no text for the licence '$id' of a crate compiled into the plugin: add it as installer/linux/licenses/$id"
        body <"$here/licenses/$id"
        ;;
    esac
done
