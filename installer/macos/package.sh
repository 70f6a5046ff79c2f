#!/usr/bin/env bash
# Packages target/installer/macos/obs-goaway.plugin (made by build.sh) as a per-user macOS
# installer: target/installer/obs-goaway-<version>-macos.pkg, which installs
#   ~/Library/Application Support/obs-studio/plugins/obs-goaway.plugin
# for the user who runs it, without administrator rights.
#
# How the per-user install works: pkgbuild makes a component package whose install location
# is "/Library/Application Support/obs-studio/plugins"; productbuild wraps it in a
# distribution (distribution.xml.in) that enables only the current-user-home domain, so
# Installer puts the payload under the installing user's home. (A postinstall script that
# copies into the console user's home would run as root and guess the user; the domain needs
# no script.) The bundle is marked non-relocatable: otherwise Installer would "update" any
# other copy of the bundle it finds on disk instead of installing to the plugins directory.
#
# Then, when the identities are set: productsign with "$DEVELOPER_ID_INSTALLER", and when
# NOTARY_PROFILE names a notarytool keychain profile (xcrun notarytool store-credentials),
# notarization (xcrun notarytool submit --wait) and stapling (xcrun stapler staple).
#
# UNTESTED: written on Linux without a Mac; see installer/macos/README.md.
#
# Environment: DEVELOPER_ID_INSTALLER ("Developer ID Installer: NAME (TEAMID)"),
# NOTARY_PROFILE, OBS_GOAWAY_BUNDLE_ID (default: obs-goaway; the package id adds ".pkg").
# Prints the package's path as the last line on stdout.
set -euo pipefail

die() {
    echo "obs-goaway: $*" >&2
    exit 1
}
[ "$(uname -s)" = Darwin ] ||
    die "installer/macos/package.sh runs only on macOS (this is $(uname -s)): it needs pkgbuild, productbuild, productsign and notarytool"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
package=obs-goaway
bundle_id=${OBS_GOAWAY_BUNDLE_ID:-obs-goaway}
pkg_id=$bundle_id.pkg
bundle=$root/target/installer/macos/$package.plugin

missing=0
for tool in pkgbuild productbuild productsign plutil xcrun; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "obs-goaway: $tool is missing: install Xcode's command line tools (xcode-select --install)" >&2
        missing=1
    fi
done
if [ ! -d "$bundle" ]; then
    echo "obs-goaway: $bundle is missing: run installer/macos/build.sh first" >&2
    missing=1
fi
if [ -n "${NOTARY_PROFILE:-}" ] && [ -z "${DEVELOPER_ID_INSTALLER:-}" ]; then
    echo "obs-goaway: NOTARY_PROFILE is set but DEVELOPER_ID_INSTALLER is not: Apple notarizes signed packages only" >&2
    missing=1
fi
if [ -n "${NOTARY_PROFILE:-}" ] && [ -d "$bundle" ] &&
    ! codesign -dv "$bundle" 2>&1 | grep -q '^Authority=Developer ID Application'; then
    echo "obs-goaway: $bundle is not signed with a Developer ID Application identity: set DEVELOPER_ID_APPLICATION and run build.sh again (notarization needs it)" >&2
    missing=1
fi
[ "$missing" = 0 ] || exit 1

version=$(plutil -extract CFBundleShortVersionString raw -o - "$bundle/Contents/Info.plist")
min_macos=$(plutil -extract LSMinimumSystemVersion raw -o - "$bundle/Contents/Info.plist")
work=$root/target/installer/macos-pkg
rm -rf "$work"
mkdir -p "$work/root" "$work/packages"
# ditto keeps the bundle's signature, extended attributes and symlinks intact.
ditto "$bundle" "$work/root/$package.plugin"

pkgbuild --analyze --root "$work/root" "$work/component.plist" >&2
plutil -replace 0.BundleIsRelocatable -bool NO "$work/component.plist"
plutil -replace 0.BundleOverwriteAction -string upgrade "$work/component.plist"

pkgbuild --root "$work/root" \
    --component-plist "$work/component.plist" \
    --identifier "$pkg_id" \
    --version "$version" \
    --install-location "/Library/Application Support/obs-studio/plugins" \
    "$work/packages/$package-component.pkg" >&2

sed -e "s/@VERSION@/$version/g" -e "s/@PKG_ID@/$pkg_id/g" -e "s/@MIN_MACOS@/$min_macos/g" \
    "$here/distribution.xml.in" >"$work/distribution.xml"
unsigned=$work/$package-$version-macos-unsigned.pkg
productbuild --distribution "$work/distribution.xml" --package-path "$work/packages" "$unsigned" >&2

out=$root/target/installer/$package-$version-macos.pkg
if [ -n "${DEVELOPER_ID_INSTALLER:-}" ]; then
    productsign --timestamp --sign "$DEVELOPER_ID_INSTALLER" "$unsigned" "$out" >&2
    pkgutil --check-signature "$out" >&2
    if [ -n "${NOTARY_PROFILE:-}" ]; then
        echo "obs-goaway: notarizing $out (this waits for Apple's answer)" >&2
        # The status decides, whatever notarytool's exit code.
        xcrun notarytool submit "$out" --keychain-profile "$NOTARY_PROFILE" --wait \
            --output-format plist >"$work/notary.plist" || true
        status=$(plutil -extract status raw -o - "$work/notary.plist" 2>/dev/null || echo "no answer")
        if [ "$status" != Accepted ]; then
            id=$(plutil -extract id raw -o - "$work/notary.plist" 2>/dev/null || echo "?")
            die "notarization ended with status '$status': see xcrun notarytool log $id --keychain-profile \"$NOTARY_PROFILE\""
        fi
        xcrun stapler staple "$out" >&2
        xcrun stapler validate "$out" >&2
    else
        echo "obs-goaway: NOTARY_PROFILE is not set: the package is signed but not notarized (Gatekeeper warns on other Macs)" >&2
    fi
else
    echo "obs-goaway: DEVELOPER_ID_INSTALLER is not set: the package is unsigned (for testing on your own Mac only)" >&2
    cp "$unsigned" "$out"
fi
echo "$out"
