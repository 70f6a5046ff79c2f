# shellcheck shell=bash
# Prerequisite checks shared by the Linux scripts (sourced, not run).
#
# check_prerequisites WHAT...: prints one line per missing tool or library, naming the Debian
# package to install, then returns 1 if anything is missing. WHAT: "build" (the plugin:
# cargo, rustc, a C compiler/linker, clang for bindgen, pkg-config, libobs-dev) and/or "deb"
# (dpkg-deb, dpkg-dev, binutils, gzip). Nothing here runs cargo: callers fail before the
# build starts.

# The repository root (this file lives in installer/linux/).
OBS_GOAWAY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The oldest libobs the plugin supports, from the crate that generates the bindings.
obs_goaway_min_libobs() {
    sed -n 's/^const MIN_LIBOBS: &str = "\([0-9.]*\)";.*/\1/p' "$OBS_GOAWAY_ROOT/src/obs-sys/build.rs" | head -n 1
}

# A [package] field of Cargo.toml (version, rust-version).
obs_goaway_cargo_field() {
    sed -n '/^\[package\]/,/^\[/s/^'"$1"' *= *"\([^"]*\)".*/\1/p' "$OBS_GOAWAY_ROOT/Cargo.toml" | head -n 1
}

# True if version $1 >= version $2 (dotted numbers).
obs_goaway_version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

check_prerequisites() {
    local missing=0 what rust_min rustc_version libobs_min libobs_version
    _need() { # command, message
        if ! command -v "$1" >/dev/null 2>&1; then
            echo "obs-goaway: $2" >&2
            missing=1
        fi
    }
    for what in "$@"; do
        case $what in
        build)
            rust_min=$(obs_goaway_cargo_field rust-version)
            _need cargo "cargo is missing: install Rust ${rust_min:-stable} or newer with rustup (https://rustup.rs); Debian 12's rustc is too old"
            _need rustc "rustc is missing: install Rust ${rust_min:-stable} or newer with rustup (https://rustup.rs)"
            if command -v rustc >/dev/null 2>&1 && [ -n "$rust_min" ]; then
                rustc_version=$(rustc --version | awk '{print $2}')
                if ! obs_goaway_version_ge "${rustc_version%%-*}" "$rust_min"; then
                    echo "obs-goaway: rustc $rustc_version is too old ($rust_min or newer needed): rustup update stable" >&2
                    missing=1
                fi
            fi
            _need cc "cc (C compiler and linker for Rust) is missing: apt-get install gcc"
            if [ -z "${LIBCLANG_PATH:-}" ]; then
                _need clang "clang is missing (bindgen needs libclang): apt-get install clang"
            fi
            if command -v pkg-config >/dev/null 2>&1; then
                libobs_min=$(obs_goaway_min_libobs)
                if ! pkg-config --exists libobs; then
                    echo "obs-goaway: libobs-dev is missing: apt-get install libobs-dev" >&2
                    missing=1
                elif ! pkg-config --atleast-version="${libobs_min:-29.0}" libobs; then
                    libobs_version=$(pkg-config --modversion libobs)
                    echo "obs-goaway: libobs $libobs_version is too old (${libobs_min:-29.0} or newer needed): install libobs-dev from a newer release" >&2
                    missing=1
                fi
            else
                echo "obs-goaway: pkg-config is missing: apt-get install pkg-config" >&2
                missing=1
            fi
            ;;
        deb)
            _need dpkg-deb "dpkg-deb is missing: apt-get install dpkg"
            _need dpkg-shlibdeps "dpkg-shlibdeps is missing: apt-get install dpkg-dev"
            _need dpkg-parsechangelog "dpkg-parsechangelog is missing: apt-get install dpkg-dev"
            _need dpkg-architecture "dpkg-architecture is missing: apt-get install dpkg-dev"
            _need strip "strip is missing: apt-get install binutils"
            _need objdump "objdump (for dpkg-shlibdeps) is missing: apt-get install binutils"
            _need gzip "gzip is missing: apt-get install gzip"
            ;;
        *)
            echo "obs-goaway: check_prerequisites: unknown group '$what'" >&2
            return 2
            ;;
        esac
    done
    unset -f _need
    return "$missing"
}
