#!/usr/bin/env bash
# Cross-builds the OBS plugin for 64-bit Windows on Debian/Ubuntu, and its NSIS installer:
#   <target>/x86_64-pc-windows-gnu/release/obs_goaway.dll   (installed as obs-goaway.dll)
#   <target>/installer/obs-goaway-<version>-windows-x64-setup.exe
# obs.dll and obs-frontend-api.dll are linked through import libraries made here with
# x86_64-w64-mingw32-dlltool from .def files that list exactly what the plugin imports
# (import_libraries below); nothing from a Windows OBS is needed.
#
# Usage: installer/windows/build.sh   (OBS_GOAWAY_SIGN_CMD=<program>: code signing, README.md)
# The installer's path is the last line on stdout; progress and errors go to stderr. Installs
# nothing: missing prerequisites are reported one per line, with the command that installs
# them, before anything is built.
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"
root=$OBS_GOAWAY_ROOT

missing=0
need() { # command, what to do when it is missing
    if ! command -v "$1" >/dev/null 2>&1; then
        say "$2"
        missing=1
    fi
}
need cargo "cargo is missing: install Rust $(cargo_field rust-version) or newer with rustup (https://rustup.rs)"
need rustc "rustc is missing: install Rust $(cargo_field rust-version) or newer with rustup (https://rustup.rs)"
if command -v rustc >/dev/null 2>&1 && [ ! -d "$(rustc --print sysroot)/lib/rustlib/$WIN_TRIPLE/lib" ]; then
    say "the Rust target $WIN_TRIPLE is missing: rustup target add $WIN_TRIPLE"
    missing=1
fi
need "$MINGW-gcc" "$MINGW-gcc (the Windows linker and C compiler) is missing: apt-get install gcc-mingw-w64-x86-64"
need "$MINGW-dlltool" "$MINGW-dlltool is missing: apt-get install gcc-mingw-w64-x86-64 (binutils-mingw-w64-x86-64)"
need "$MINGW-objdump" "$MINGW-objdump is missing: apt-get install gcc-mingw-w64-x86-64 (binutils-mingw-w64-x86-64)"
need makensis "makensis is missing: apt-get install nsis"
need nm "nm is missing: apt-get install binutils"
if [ -z "${LIBCLANG_PATH:-}" ] && ! compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null &&
    ! ldconfig -p 2>/dev/null | grep -q 'libclang.*\.so'; then
    say "libclang (for bindgen) is missing: apt-get install libclang-dev clang"
    missing=1
fi
obs_include=${OBS_SYS_INCLUDE_DIR:-/usr/include/obs}
if [ ! -f "$obs_include/obs-module.h" ] || [ ! -f "$obs_include/obs-frontend-api.h" ]; then
    say "the libobs headers are missing from $obs_include: apt-get install libobs-dev (or set OBS_SYS_INCLUDE_DIR)"
    missing=1
fi
for lib in libobs.so.0 libobs-frontend-api.so.0; do
    if [ ! -f "$LIBOBS_DIR/$lib" ]; then
        say "$LIBOBS_DIR/$lib (whose exports stand for the Windows DLL's) is missing: apt-get install libobs-dev"
        missing=1
    fi
done
[ "$missing" = 0 ] || exit 1

version=$(cargo_field version)
[ -n "$version" ] || die "cannot read the version from $root/Cargo.toml"
target_dir=$(cargo_target_dir)
[ -n "$target_dir" ] || die "cargo metadata did not name the target directory"
dll=$target_dir/$WIN_TRIPLE/release/obs_goaway.dll
setup=$target_dir/installer/obs-goaway-$version-windows-x64-setup.exe

# Import libraries. The names come from the Windows link itself: the list of the last good
# build is kept in $implibs; when the plugin needs a libobs function it did not import
# before, the link fails with "undefined reference to `name'", the name is added (if libobs
# or the frontend API exports it: Debian's libobs stands for obs.dll, whose exports are the
# same EXPORT-marked API) and cargo runs again. After a good link the list becomes the DLL's
# own import table, so it shrinks with the plugin too.
# (The Linux .so's imports are not enough: ld on Linux drops references from unused code,
# the Windows link resolves them all, e.g. every libobs call inside obs-wrapper.)
implibs=$target_dir/$WIN_TRIPLE/obs-import-libs
mkdir -p "$implibs"
libraries=(obs obs-frontend-api)
for lib in "${libraries[@]}"; do
    exported_names "$LIBOBS_DIR/lib$lib.so.0" >"$implibs/$lib.exports"
    touch "$implibs/$lib.imports"
done

import_libraries() {
    local lib
    for lib in "${libraries[@]}"; do
        # "name DATA" for variables, as the export list says.
        sort -u "$implibs/$lib.imports" |
            awk 'NR == FNR { kind[$1] = $2; next } { print $1 (kind[$1] ? " " kind[$1] : "") }' \
                "$implibs/$lib.exports" - >"$implibs/$lib.names"
        { printf 'LIBRARY %s.dll\nEXPORTS\n' "$lib"; cat "$implibs/$lib.names"; } >"$implibs/$lib.def"
        "$MINGW-dlltool" -d "$implibs/$lib.def" -l "$implibs/lib$lib.dll.a" -D "$lib.dll"
    done
}

# Adds the libobs names of a failed link to the import lists; fails on any other name.
learn_imports() { # cargo's log
    local names unknown=() name lib found
    names=$(grep -o "undefined reference to \`[^']*'" "$1" | sed "s/^[^\`]*\`//; s/'\$//; s/^__imp_//" | sort -u)
    [ -n "$names" ] || return 1
    for name in $names; do
        found=
        for lib in "${libraries[@]}"; do
            if awk -v n="$name" '$1 == n { f = 1 } END { exit !f }' "$implibs/$lib.exports"; then
                echo "$name" >>"$implibs/$lib.imports"
                found=1
                break
            fi
        done
        [ -n "$found" ] || unknown+=("$name")
    done
    if [ "${#unknown[@]}" -gt 0 ]; then
        die "the Windows link needs names that neither libobs nor the frontend API exports: ${unknown[*]}"
    fi
    say "the plugin imports $(echo "$names" | wc -w) more libobs names: linking again"
}

# ld's "undefined reference" lines stay in the log (the names are learnt from it).
# The shipped DLL is stripped as the Linux package's .so is (Windows debuggers read PDBs,
# not DWARF): no debug info, which also makes the build faster, and no symbol table. Only
# this target's units see these settings, so native release builds stay as they are.
log=$implibs/cargo.log
attempt=1
while :; do
    import_libraries
    say "building the plugin for $WIN_TRIPLE (cargo build --release --lib --target $WIN_TRIPLE)"
    if (cd "$root" &&
        OBS_SYS_INCLUDE_DIR=$obs_include OBS_SYS_LIB_DIR=$implibs \
            CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
            cargo build --release --lib --target "$WIN_TRIPLE") 2>&1 | tee "$log" |
        { grep -v -e 'undefined reference to' -e 'more undefined references' -e ': in function ' >&2 || true; }; then
        break
    fi
    if [ "$attempt" -ge 3 ] || ! learn_imports "$log"; then
        die "cargo build --target $WIN_TRIPLE failed (log: $log)"
    fi
    attempt=$((attempt + 1))
done
[ -f "$dll" ] || die "cargo did not produce $dll"

# The import lists become exactly what the DLL imports.
imports=$(pe_imports "$dll")
for lib in "${libraries[@]}"; do
    echo "$imports" | awk -v d="$lib.dll" 'tolower($1) == d { print $2 }' | sort -u >"$implibs/$lib.imports.new"
    if ! cmp -s "$implibs/$lib.imports.new" <(sort -u "$implibs/$lib.imports"); then
        mv "$implibs/$lib.imports.new" "$implibs/$lib.imports"
        pruned=1
    else
        rm "$implibs/$lib.imports.new"
    fi
done
[ -z "${pruned:-}" ] || import_libraries
say "$dll imports $(wc -l <"$implibs/obs.imports") names from obs.dll, $(wc -l <"$implibs/obs-frontend-api.imports") from obs-frontend-api.dll"

# The installer.
work=$target_dir/installer/windows-build
rm -rf "$work"
mkdir -p "$work/stage/locale" "$(dirname "$setup")"
cp "$dll" "$work/stage/obs-goaway.dll"
shopt -s nullglob
locales=("$root"/locale/*.ini)
shopt -u nullglob
[ "${#locales[@]}" -gt 0 ] || die "no translations in $root/locale/*.ini"
cp "${locales[@]}" "$work/stage/locale/"

# The licence page: the repository's licence text if it has one, else the notice of the
# licence Cargo.toml names (one line per paragraph: the page's text box wraps). CRLF line
# ends for that text box.
license=$(cargo_field license)
license_text=
for name in LICENSE LICENSE.txt LICENSE.md COPYING COPYING.txt; do
    if [ -f "$root/$name" ]; then
        license_text=$root/$name
        break
    fi
done
if [ -n "$license_text" ]; then
    sed 's/\r$//; s/$/\r/' "$license_text" >"$work/license.txt"
elif [ "$license" = GPL-2.0-or-later ]; then
    sed 's/$/\r/' >"$work/license.txt" <<EOF
obs-goaway $version, a plugin for OBS Studio

This program is free software; you can redistribute it and/or modify it under the terms of the GNU General Public License as published by the Free Software Foundation; either version 2 of the License, or (at your option) any later version (SPDX: GPL-2.0-or-later).

This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU General Public License for more details.

You should have received a copy of the GNU General Public License along with this program; if not, see https://www.gnu.org/licenses/old-licenses/gpl-2.0.html.
EOF
else
    die "Cargo.toml's licence is '$license' and the repository has no LICENSE file for the installer's licence page"
fi

# VIProductVersion wants four numbers: 1.2.3-rc.1 gives 1.2.3.0.
numeric=${version%%[-+]*}
version4=$numeric.0
case $version4 in
[0-9]*.[0-9]*.[0-9]*.0) ;;
*) die "cannot make a four-part file version from $version" ;;
esac

# Code signing (README.md): OBS_GOAWAY_SIGN_CMD, a program that signs the PE file it is
# given in place, signs the DLL here, then the uninstaller and the installer in makensis.
sign=()
if [ -n "${OBS_GOAWAY_SIGN_CMD:-}" ]; then
    command -v "$OBS_GOAWAY_SIGN_CMD" >/dev/null || die "OBS_GOAWAY_SIGN_CMD=$OBS_GOAWAY_SIGN_CMD is not a program"
    say "signing the DLL ($OBS_GOAWAY_SIGN_CMD)"
    "$OBS_GOAWAY_SIGN_CMD" "$work/stage/obs-goaway.dll" >&2 || die "$OBS_GOAWAY_SIGN_CMD failed on the DLL"
    sign=("-DSIGN_CMD=$(command -v "$OBS_GOAWAY_SIGN_CMD")")
fi

say "building the installer (makensis)"
rm -f "$setup"
if ! makensis -V2 -WX -NOCD \
    "-DVERSION=$version" "-DVERSION4=$version4" "-DSTAGE=$work/stage" \
    "-DLICENSE_FILE=$work/license.txt" "-DOUTFILE=$setup" "${sign[@]}" \
    "$here/obs-goaway.nsi" >&2; then
    # A failed !finalize (signing) leaves the written installer behind: never ship it.
    rm -f "$setup"
    die "makensis failed"
fi
[ -f "$setup" ] || die "makensis did not produce $setup"
echo "$setup"
