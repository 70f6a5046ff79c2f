#!/usr/bin/env bash
# Builds the Debian package of the OBS plugin with plain dpkg-deb from a staged tree:
#   /usr/lib/<multiarch>/obs-plugins/obs-goaway.so          (stripped)
#   /usr/share/obs/obs-plugins/obs-goaway/locale/*.ini      (every locale/*.ini of the repo)
#   /usr/share/doc/obs-goaway/{copyright,changelog.Debian.gz}
#   /usr/share/lintian/overrides/obs-goaway                 (from installer/linux/lintian-overrides)
# Version: Cargo.toml's (upstream) plus the Debian revision of installer/linux/changelog's
# top entry, which must name the same upstream version. Depends: dpkg-shlibdeps, with the
# libobs0 minimum raised to the oldest libobs the plugin supports.
#
# Usage: installer/linux/build-deb.sh
# Output: <target>/installer/obs-goaway_<version>_<arch>.deb; its path is the last line on
# stdout, everything else goes to stderr. SOURCE_DATE_EPOCH (default: the changelog's date)
# sets every timestamp, so the same tree and compiler give the same package.
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/prerequisites.sh
. "$here/prerequisites.sh"
root=$OBS_GOAWAY_ROOT

say() { echo "obs-goaway: $*" >&2; }
die() {
    say "$*"
    exit 1
}

[ "$(uname -s)" = Linux ] || die "build-deb.sh builds Debian packages on Linux only (this is $(uname -s))"
check_prerequisites build deb || exit 1

package=obs-goaway
changelog=$here/changelog
upstream=$(obs_goaway_cargo_field version)
[ -n "$upstream" ] || die "cannot read the version from $root/Cargo.toml"
# Cargo pre-releases (1.0.0-rc.1) sort before the release in Debian only with a tilde.
upstream_deb=${upstream/-/\~}
version=$(dpkg-parsechangelog -l "$changelog" -S Version)
maintainer=$(dpkg-parsechangelog -l "$changelog" -S Maintainer)
if [ "${version%-*}" != "$upstream_deb" ]; then
    die "installer/linux/changelog's top entry is $version but Cargo.toml's version is $upstream: add an entry for $upstream_deb-1 (dch -c installer/linux/changelog -v $upstream_deb-1)"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$changelog" -S Timestamp)}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
triple=$(rustc -vV | sed -n 's/^host: //p')
min_libobs=$(obs_goaway_min_libobs)
[ -n "$min_libobs" ] || die "cannot read MIN_LIBOBS from src/obs-sys/build.rs"

case ${CARGO_TARGET_DIR:-} in
"") target_dir=$root/target ;;
/*) target_dir=$CARGO_TARGET_DIR ;;
*) target_dir=$PWD/$CARGO_TARGET_DIR ;;
esac

say "building the plugin (cargo build --release --lib)"
(cd "$root" && cargo build --release --lib) >&2
so=$target_dir/release/libobs_goaway.so
[ -f "$so" ] || die "cargo did not produce $so"

# dpkg-shlibdeps wants the tree at debian/<package> under a directory with debian/control.
work=$target_dir/installer/deb-build
stage=$work/debian/$package
rm -rf "$work"
mkdir -p "$stage/DEBIAN"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" >"$work/debian/control"

plugin_dir=$stage/usr/lib/$multiarch/obs-plugins
data_dir=$stage/usr/share/obs/obs-plugins/$package
doc_dir=$stage/usr/share/doc/$package
mkdir -p "$plugin_dir" "$data_dir/locale" "$doc_dir"

install -m 0644 "$so" "$plugin_dir/$package.so"
# As dh_strip does: the release profile keeps debug info for backtraces and profiling.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$plugin_dir/$package.so"

shopt -s nullglob
locales=("$root"/locale/*.ini)
shopt -u nullglob
[ -f "$root/locale/en-US.ini" ] || die "locale/en-US.ini is missing (OBS falls back to it for every language)"
install -m 0644 "${locales[@]}" "$data_dir/locale/"

"$here/copyright.sh" "$triple" >"$doc_dir/copyright"
chmod 0644 "$doc_dir/copyright"
gzip -9n <"$changelog" >"$doc_dir/changelog.Debian.gz"
chmod 0644 "$doc_dir/changelog.Debian.gz"
if [ -s "$here/lintian-overrides" ]; then
    install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/$package"
fi

# Depends: what the stripped plugin links (libc6, libgcc-s1, libobs0). dpkg-shlibdeps derives
# libobs0's minimum from the symbols it imports, but the plugin needs the libobs ABI of
# MIN_LIBOBS or newer. Debian 13 and later ship libobs0t64 (which provides libobs0).
shlibdeps=$(cd "$work" && dpkg-shlibdeps -O -e"debian/$package/usr/lib/$multiarch/obs-plugins/$package.so")
shlibdeps=${shlibdeps#shlibs:Depends=}
depends=
IFS=',' read -ra relations <<<"$shlibdeps"
for relation in "${relations[@]}"; do
    relation=$(printf '%s' "$relation" | sed -e 's/^ *//' -e 's/ *$//')
    case $relation in
    libobs0 | "libobs0 ("*) relation="libobs0 (>= $min_libobs) | libobs0t64 (>= $min_libobs)" ;;
    esac
    depends=${depends:+$depends, }$relation
done
case $depends in
*libobs0*) ;;
*) die "dpkg-shlibdeps found no libobs dependency in $so ($shlibdeps)" ;;
esac

installed_size=$(du -k -s --apparent-size "$stage/usr" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Enhances: obs-studio
Section: video
Priority: optional
Description: lossless RTMP reconnection (Go Away) plugin for OBS Studio
 This OBS Studio plugin adds an RTMP/RTMPS streaming output and service that
 announce support for RTMP Go Away and for Enhanced RTMP's Reconnect Request.
 When the ingest server asks the publisher to move, for example before a
 deploy or maintenance restart, the output opens a new connection and
 switches to it at the next keyframe: no frame is lost or duplicated and
 viewers see no stall. Without it, OBS notices the dropped connection only
 seconds later and loses the video in between.
 .
 Works with OBS Studio $min_libobs and newer.
EOF

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

out_dir=$target_dir/installer
deb=$out_dir/${package}_${version}_${arch}.deb
mkdir -p "$out_dir"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
say "built $deb (Depends: $depends)"
echo "$deb"
