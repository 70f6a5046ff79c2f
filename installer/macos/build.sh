#!/usr/bin/env bash
# Builds obs-goaway.plugin for macOS, universal (arm64 + x86_64):
#   target/installer/macos/obs-goaway.plugin/Contents/Info.plist
#   target/installer/macos/obs-goaway.plugin/Contents/MacOS/obs-goaway        (lipo of both)
#   target/installer/macos/obs-goaway.plugin/Contents/Resources/locale/*.ini
#   target/installer/macos/obs-goaway.plugin.dSYM                             (not packaged)
# and signs it: with "$DEVELOPER_ID_APPLICATION" (hardened runtime, secure timestamp) when
# set, otherwise ad hoc (enough for your own Mac, not for distribution).
#
# UNTESTED: written on Linux without a Mac; see installer/macos/README.md.
#
# Environment:
#   OBS_SDK                    (required) OBS's macOS headers and frameworks:
#                              headers in $OBS_SDK/include/obs (or libobs.framework/Headers),
#                              libobs.framework and obs-frontend-api.dylib in
#                              $OBS_SDK/Frameworks (or $OBS_SDK); see README.md
#   DEVELOPER_ID_APPLICATION   "Developer ID Application: NAME (TEAMID)" to sign for release
#   OBS_GOAWAY_BUNDLE_ID       CFBundleIdentifier (default: obs-goaway)
#   MACOSX_DEPLOYMENT_TARGET   oldest macOS (default 11.0, as OBS 29/30)
# Prints the bundle's path as the last line on stdout.
set -euo pipefail

die() {
    echo "obs-goaway: $*" >&2
    exit 1
}
[ "$(uname -s)" = Darwin ] ||
    die "installer/macos/build.sh runs only on macOS (this is $(uname -s)): it needs Xcode's command line tools (lipo, codesign) and OBS's macOS frameworks"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
package=obs-goaway
targets=(aarch64-apple-darwin x86_64-apple-darwin)
export MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET:-11.0}
bundle_id=${OBS_GOAWAY_BUNDLE_ID:-obs-goaway}

# Prerequisites, one line each, before anything is built.
missing=0
need() { # command, message
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "obs-goaway: $2" >&2
        missing=1
    fi
}
need xcrun "xcrun is missing: install Xcode's command line tools (xcode-select --install)"
need lipo "lipo is missing: install Xcode's command line tools (xcode-select --install)"
need codesign "codesign is missing: install Xcode's command line tools (xcode-select --install)"
need dsymutil "dsymutil is missing: install Xcode's command line tools (xcode-select --install)"
need plutil "plutil is missing (it ships with macOS)"
need cargo "cargo is missing: install Rust with rustup (https://rustup.rs)"
need rustup "rustup is missing: install Rust with rustup (https://rustup.rs), which adds the two macOS targets"
need pkg-config "pkg-config is missing (bindings are generated from a pkg-config description of OBS_SDK): brew install pkgconf"
if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup target list --installed)
    for target in "${targets[@]}"; do
        if ! grep -qx "$target" <<<"$installed"; then
            echo "obs-goaway: the Rust target $target is missing: rustup target add $target" >&2
            missing=1
        fi
    done
fi
if [ -z "${OBS_SDK:-}" ]; then
    echo "obs-goaway: OBS_SDK is not set: point it at OBS's macOS headers and frameworks (see installer/macos/README.md)" >&2
    missing=1
fi
[ "$missing" = 0 ] || exit 1

# Locate the SDK pieces.
include=
for dir in "$OBS_SDK/include/obs" "$OBS_SDK/include" "$OBS_SDK/Frameworks/libobs.framework/Headers" "$OBS_SDK/libobs.framework/Headers"; do
    if [ -f "$dir/obs-module.h" ]; then
        include=$dir
        break
    fi
done
[ -n "$include" ] || die "no obs-module.h under $OBS_SDK (looked in include/obs, include, [Frameworks/]libobs.framework/Headers)"
frontend_include=$include
for dir in "$include" "$OBS_SDK/include/obs-frontend-api" "$OBS_SDK/include"; do
    if [ -f "$dir/obs-frontend-api.h" ]; then
        frontend_include=$dir
        break
    fi
done
[ -f "$frontend_include/obs-frontend-api.h" ] || die "no obs-frontend-api.h under $OBS_SDK"
frameworks=
for dir in "$OBS_SDK/Frameworks" "$OBS_SDK"; do
    if [ -d "$dir/libobs.framework" ]; then
        frameworks=$dir
        break
    fi
done
[ -n "$frameworks" ] || die "no libobs.framework in $OBS_SDK/Frameworks or $OBS_SDK"
frontend_lib=
for file in "$frameworks/obs-frontend-api.dylib" "$OBS_SDK/lib/obs-frontend-api.dylib" "$OBS_SDK/lib/libobs-frontend-api.dylib"; do
    if [ -f "$file" ]; then
        frontend_lib=$file
        break
    fi
done
[ -n "$frontend_lib" ] || die "no obs-frontend-api.dylib in $frameworks or $OBS_SDK/lib"
for arch in arm64 x86_64; do
    lipo "$frameworks/libobs.framework/libobs" -verify_arch "$arch" 2>/dev/null ||
        die "$frameworks/libobs.framework is not universal (no $arch): use the frameworks of OBS's universal or of both builds"
done
major=$(sed -n 's/^#define LIBOBS_API_MAJOR_VER *\([0-9]*\).*/\1/p' "$include/obs-config.h")
minor=$(sed -n 's/^#define LIBOBS_API_MINOR_VER *\([0-9]*\).*/\1/p' "$include/obs-config.h")
patch=$(sed -n 's/^#define LIBOBS_API_PATCH_VER *\([0-9]*\).*/\1/p' "$include/obs-config.h")
[ -n "$major" ] || die "cannot read LIBOBS_API_MAJOR_VER from $include/obs-config.h"

# src/obs-sys's build script finds libobs with pkg-config and links obs-frontend-api by
# name (-lobs-frontend-api): describe OBS_SDK that way.
work=$root/target/installer/macos-build
rm -rf "$work"
mkdir -p "$work/pkgconfig" "$work/lib"
ln -s "$frontend_lib" "$work/lib/libobs-frontend-api.dylib"
defines=
[ -f "$include/obsconfig.h" ] && defines=-DHAVE_OBSCONFIG_H
cat >"$work/pkgconfig/libobs.pc" <<EOF
Name: libobs
Description: libobs from OBS_SDK ($OBS_SDK)
Version: $major.${minor:-0}.${patch:-0}
Cflags: -I$include -I$frontend_include $defines
Libs: -F$frameworks -framework libobs -L$work/lib
EOF
export PKG_CONFIG_LIBDIR=$work/pkgconfig PKG_CONFIG_PATH=
export PKG_CONFIG_ALLOW_CROSS=1
sdkroot=$(xcrun --sdk macosx --show-sdk-path)
export BINDGEN_EXTRA_CLANG_ARGS="-isysroot $sdkroot -F$frameworks"

slices=()
for target in "${targets[@]}"; do
    echo "obs-goaway: cargo build --release --lib --target $target" >&2
    # OBS loads plugins into OBS.app, whose Frameworks directory holds libobs and the
    # frontend API: resolve @rpath there.
    env_name=CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
    (cd "$root" && env "$env_name=-C link-arg=-Wl,-rpath,@executable_path/../Frameworks" \
        cargo build --release --lib --target "$target") >&2
    slice=$root/target/$target/release/libobs_goaway.dylib
    [ -f "$slice" ] || die "cargo did not produce $slice"
    slices+=("$slice")
done

out=$root/target/installer/macos
bundle=$out/$package.plugin
rm -rf "$bundle" "$bundle.dSYM"
mkdir -p "$bundle/Contents/MacOS" "$bundle/Contents/Resources/locale"
lipo -create -output "$bundle/Contents/MacOS/$package" "${slices[@]}"
dsymutil "$bundle/Contents/MacOS/$package" -o "$bundle.dSYM"
strip -x "$bundle/Contents/MacOS/$package"

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
sed -e "s/@BUNDLE_ID@/$bundle_id/g" -e "s/@VERSION@/$version/g" \
    -e "s/@MIN_MACOS@/$MACOSX_DEPLOYMENT_TARGET/g" "$here/Info.plist.in" >"$bundle/Contents/Info.plist"
plutil -lint "$bundle/Contents/Info.plist" >&2

[ -f "$root/locale/en-US.ini" ] || die "locale/en-US.ini is missing"
cp "$root"/locale/*.ini "$bundle/Contents/Resources/locale/"

if [ -n "${DEVELOPER_ID_APPLICATION:-}" ]; then
    codesign --force --options runtime --timestamp --sign "$DEVELOPER_ID_APPLICATION" "$bundle" >&2
else
    echo "obs-goaway: DEVELOPER_ID_APPLICATION is not set: signing ad hoc (fine on this Mac, blocked by Gatekeeper elsewhere)" >&2
    codesign --force --sign - "$bundle" >&2
fi
codesign --verify --strict --verbose=2 "$bundle" >&2
lipo -info "$bundle/Contents/MacOS/$package" >&2
echo "$bundle"
