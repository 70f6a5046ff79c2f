# shellcheck shell=bash disable=SC2034
# Shared by build.sh and test.sh (sourced, not run): where things are, and messages.
# (SC2034: the variables are used by the scripts that source this file.)

# The repository root (this file lives in installer/windows/).
OBS_GOAWAY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The Rust target and the matching mingw-w64 tool prefix (Debian: gcc-mingw-w64-x86-64).
WIN_TRIPLE=x86_64-pc-windows-gnu
MINGW=x86_64-w64-mingw32
# The libobs whose exports stand for obs.dll's and obs-frontend-api.dll's (libobs-dev).
LIBOBS_DIR=/usr/lib/x86_64-linux-gnu

say() { echo "obs-goaway: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# A [package] field of Cargo.toml (version, license, rust-version).
cargo_field() {
    sed -n '/^\[package\]/,/^\[/s/^'"$1"' *= *"\([^"]*\)".*/\1/p' "$OBS_GOAWAY_ROOT/Cargo.toml" | head -n 1
}

# Cargo's target directory (CARGO_TARGET_DIR and .cargo/config included).
cargo_target_dir() {
    (cd "$OBS_GOAWAY_ROOT" && cargo metadata --no-deps --format-version 1) |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}

# Names a shared library exports ("name" or "name DATA" for variables, as .def files write
# them), sorted; linker-made symbols (_init, _end, ...) left out.
exported_names() {
    nm -D --defined-only "$1" | awk '
        $3 ~ /^_/ { next }
        { sub(/@.*/, "", $3) }
        $2 ~ /^[TWi]$/ { print $3; next }
        $2 ~ /^[DBRVG]$/ { print $3 " DATA" }' | sort -u
}

# "dll name" lines of a PE file's import table (dll as written there, e.g. KERNEL32.dll).
pe_imports() {
    "$MINGW-objdump" -p "$1" | awk -F'\t' '
        /^\tDLL Name: / { dll = substr($0, index($0, ": ") + 2); next }
        /^$/ { next }
        dll != "" && NF >= 3 && $2 ~ /^[0-9a-f]+$/ { n = split($3, w, " "); print dll, w[n] }
        /^[^\t]/ { dll = "" }'
}

# Names a PE file exports.
pe_exports() {
    "$MINGW-objdump" -p "$1" | awk '
        /^\[Ordinal\/Name Pointer\] Table/ { on = 1; next }
        on && /^\t\[ *[0-9]+\]/ { print $NF; next }
        on && !/^\t/ { on = 0 }'
}
