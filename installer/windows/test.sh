#!/usr/bin/env bash
# Tests what installer/windows/build.sh made, on Debian as root:
#  1. the plugin DLL's import table names only system DLLs, obs.dll and obs-frontend-api.dll;
#     every obs.dll import exists in OBS 29.0.2's and 32.x's libobs; the module exports
#     what OBS looks for;
#  2. in the Debian sid root (.ci/sid-root.sh; wine 10: bookworm's wine 8 lacks the
#     bcryptprimitives.dll Rust's std needs), under wine, headless, in a fresh prefix:
#     a silent install (/S) puts the files in ProgramData and the uninstall key in the
#     registry; a loader LoadLibrary's the installed DLL next to no-op obs.dll and
#     obs-frontend-api.dll stubs exporting exactly what the plugin imports, and finds its
#     entry points; a second install, with an OBS to find, upgrades in place; the silent
#     uninstall (the QuietUninstallString) removes every file, directory and registry key.
# Installs wine into the root when it is missing. Runs in a private mount namespace, so
# the root's proc and dev mounts never outlive it nor touch anyone else's.
#
# Usage: installer/windows/test.sh   (OBS_GOAWAY_SID_ROOT: the root, default
# /var/cache/obs-goaway/sid; OBS_GOAWAY_KEEP_WINE=1 keeps the wine prefix for a look.)
# Prints one PASS/FAIL line per check and a summary; exits 1 if anything failed.
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"

[ "$(id -u)" = 0 ] || die "test.sh runs as root (it uses chroot and mount)"
for tool in "$MINGW-gcc" "$MINGW-objdump" nm unshare chroot mount timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install gcc-mingw-w64-x86-64 binutils util-linux coreutils)"
done

# Everything below runs in a private mount namespace.
if [ -z "${OBS_GOAWAY_WINE_NS:-}" ]; then
    OBS_GOAWAY_WINE_NS=1 exec unshare --mount --propagation private "$here/test.sh" "$@"
fi

passed=0
failed=0
pass() {
    echo "PASS $*"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $*"
    failed=$((failed + 1))
}
check() { # description, command...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

version=$(cargo_field version)
target_dir=$(cargo_target_dir)
dll=$target_dir/$WIN_TRIPLE/release/obs_goaway.dll
setup=$target_dir/installer/obs-goaway-$version-windows-x64-setup.exe
if [ ! -f "$dll" ] || [ ! -f "$setup" ]; then
    die "$dll or $setup is missing: run installer/windows/build.sh first"
fi

# ---- 1. The DLL ----------------------------------------------------------------------------

# Every DLL the plugin may import, and who needs it.
allowed_dll() {
    case ${1,,} in
    obs.dll | obs-frontend-api.dll) ;; # libobs and the frontend API, from OBS's bin\64bit
    kernel32.dll) ;;                   # Rust's std and every crate: memory, threads, files, time
    ntdll.dll) ;;                      # std (pipes, NtReadFile/NtWriteFile) and mio's socket polling (AFD: NtCreateFile, NtDeviceIoControlFile)
    ws2_32.dll) ;;                     # sockets: std::net, socket2, mio/tokio
    userenv.dll) ;;                    # std::env::home_dir (GetUserProfileDirectoryW)
    bcryptprimitives.dll) ;;           # std's and getrandom 0.3's random numbers (ProcessPrng, Windows 10+)
    bcrypt.dll) ;;                     # getrandom 0.2, under ring (rustls): BCryptGenRandom
    advapi32.dll) ;;                   # getrandom 0.2's fallback: RtlGenRandom (SystemFunction036)
    msvcrt.dll) ;;                     # mingw-w64's C runtime (Rust's windows-gnu target), also ring's C code
    api-ms-win-crt-*.dll) ;;           # the same C runtime when the mingw-w64 toolchain is UCRT-based
    api-ms-win-core-synch-l1-2-0.dll) ;; # std's locks and thread parking (WaitOnAddress/WakeByAddress*, Windows 8+)
    *) return 1 ;;
    esac
}

imports=$(pe_imports "$dll")
dlls=$(echo "$imports" | awk '{print $1}' | sort -uf)
unexpected=
for d in $dlls; do
    allowed_dll "$d" || unexpected="$unexpected $d"
done
echo "the DLL imports from: $(echo "$dlls" | tr '\n' ' ')"
check "imports only system DLLs, obs.dll and obs-frontend-api.dll${unexpected:+ (unexpected:$unexpected)}" test -z "$unexpected"
obs_imports=$(echo "$imports" | awk 'tolower($1) == "obs.dll" { print $2 }' | sort -u)
frontend_imports=$(echo "$imports" | awk 'tolower($1) == "obs-frontend-api.dll" { print $2 }' | sort -u)
check "imports obs.dll ($(echo "$obs_imports" | grep -c .) names) and obs-frontend-api.dll ($(echo "$frontend_imports" | grep -c . || true) names)" \
    test -n "$obs_imports"

exports=$(pe_exports "$dll")
for name in obs_module_load obs_module_ver obs_module_set_pointer obs_module_set_locale \
    obs_module_free_locale obs_module_name obs_module_unload obs_module_description; do
    check "exports $name" grep -qx "$name" <<<"$exports"
done

# Debian's libobs exports stand for obs.dll's (the same EXPORT-marked API): a name OBS no
# longer has would make Windows refuse to load the whole plugin.
missing_in() { # root, library, names
    comm -23 <(echo "$3") <(exported_names "$1$LIBOBS_DIR/$2" | awk '{print $1}') | tr '\n' ' '
}

# ---- 2. Under wine in the sid root -----------------------------------------------------------

root=${OBS_GOAWAY_SID_ROOT:-/var/cache/obs-goaway/sid}
if [ ! -x "$root/usr/bin/obs" ]; then
    say "the Debian sid root is missing at $root: making it (.ci/sid-root.sh)"
    "$OBS_GOAWAY_ROOT/.ci/sid-root.sh" "$root" >/dev/null
fi
for lib in libobs.so.0:obs libobs-frontend-api.so.0:frontend; do
    names=$obs_imports
    [ "${lib#*:}" = obs ] || names=$frontend_imports
    [ -n "$names" ] || continue
    for where in "this machine's OBS (29.0.2 on Debian 12):" "the sid root's OBS (32.x):$root"; do
        gone=$(missing_in "${where##*:}" "${lib%:*}" "$names")
        check "every ${lib#*:} import exists in ${where%:*}${gone:+ (missing: $gone)}" test -z "$gone"
    done
done

work=
mounted=()
cleanup() {
    if [ -n "$work" ] && [ -d "$root$work/prefix" ]; then
        timeout 30 chroot "$root" "${wine_env[@]}" wineserver -k >/dev/null 2>&1 || true
    fi
    local m
    for ((m = ${#mounted[@]} - 1; m >= 0; m--)); do
        umount "${mounted[m]}" 2>/dev/null || umount -l "${mounted[m]}" || true
    done
    if [ -n "$work" ] && [ -z "${OBS_GOAWAY_KEEP_WINE:-}" ]; then
        rm -rf "${root:?}$work"
    elif [ -n "$work" ]; then
        say "wine prefix kept: chroot $root, WINEPREFIX=$work/prefix"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount --bind /dev "$root/dev" && mounted+=("$root/dev")

if ! chroot "$root" sh -c 'command -v wine && command -v wine64' >/dev/null 2>&1; then
    say "installing wine into $root (apt-get install wine wine64)"
    chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update >&2
    chroot "$root" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends wine wine64 >&2
fi

work=$(mktemp -d "$root/tmp/obs-goaway-wine.XXXXXX")
work=${work#"$root"}
# Headless: no X11 or Wayland driver, no Mono/Gecko download prompts, no debug output.
wine_env=(env -i PATH=/usr/bin:/bin:/usr/lib/x86_64-linux-gnu/wine:/usr/lib/wine
    HOME="$work" WINEPREFIX="$work/prefix" WINEDEBUG=-all LANG=C.UTF-8
    "WINEDLLOVERRIDES=mscoree,mshtml=;winewayland.drv,winex11.drv=d")
wine_run() { # seconds, command... (inside the root)
    local seconds=$1
    shift
    timeout -k 10 "$seconds" chroot "$root" "${wine_env[@]}" "$@"
}
# Waits for every process of the prefix (an uninstaller re-runs itself from %TEMP%).
wine_settle() { wine_run 120 wineserver -w; }

drive_c=$root$work/prefix/drive_c
plugin_win='C:\ProgramData\obs-studio\plugins\obs-goaway'
plugin_dir=$drive_c/ProgramData/obs-studio/plugins/obs-goaway
uninstall_key='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\obs-goaway'

# Values of a registry key as "name<TAB>type<TAB>data" lines; fails if the key is missing.
reg_values() {
    local out
    out=$(wine_run 60 wine reg query "$1" 2>/dev/null | tr -d '\r') || return 1
    echo "$out" | sed -n 's/^    \([^ ]*\)    \(REG_[A-Z_]*\)    \(.*\)$/\1\t\2\t\3/p'
}
reg_value() { echo "$1" | awk -F'\t' -v n="$2" '$1 == n { print $3 }'; }

started=$SECONDS
check "wine prefix created (wineboot)" wine_run 300 wineboot -i
wine_settle
say "wine prefix ready in $((SECONDS - started)) s"

cp "$setup" "$root$work/setup.exe"

installed_files_ok() {
    local f ok=0
    cmp -s "$dll" "$plugin_dir/bin/64bit/obs-goaway.dll" || {
        printf '  %s is missing or differs\n' "$plugin_win\\bin\\64bit\\obs-goaway.dll"
        ok=1
    }
    for f in "$OBS_GOAWAY_ROOT"/locale/*.ini; do
        cmp -s "$f" "$plugin_dir/data/locale/$(basename "$f")" || {
            printf '  %s is missing or differs\n' "$plugin_win\\data\\locale\\$(basename "$f")"
            ok=1
        }
    done
    [ -f "$plugin_dir/uninstall.exe" ] || {
        printf '  %s is missing\n' "$plugin_win\\uninstall.exe"
        ok=1
    }
    return "$ok"
}

uninstall_key_ok() { # expected DisplayIcon ("" for none)
    local values ok=0 name want got size
    values=$(reg_values "$uninstall_key") || {
        echo "  $uninstall_key is missing"
        return 1
    }
    for name in DisplayName:'obs-goaway (OBS Studio plugin)' DisplayVersion:"$version" \
        Publisher:'obs-goaway developers' UninstallString:"\"$plugin_win\\uninstall.exe\"" \
        QuietUninstallString:"\"$plugin_win\\uninstall.exe\" /S" InstallLocation:"$plugin_win" \
        NoModify:0x1 NoRepair:0x1 DisplayIcon:"$1"; do
        want=${name#*:}
        name=${name%%:*}
        got=$(reg_value "$values" "$name")
        if [ "$got" != "$want" ]; then
            echo "  $name is '$got', not '$want'"
            ok=1
        fi
    done
    # EstimatedSize (KiB) is the installed DLL, translations and uninstaller.
    size=$(($(reg_value "$values" EstimatedSize)))
    if [ "$size" -lt $(($(stat -c %s "$dll") / 1024)) ] || [ "$size" -gt $(($(stat -c %s "$dll") / 1024 + 1024)) ]; then
        echo "  EstimatedSize is $size KiB for a $(stat -c %s "$dll") byte DLL"
        ok=1
    fi
    return "$ok"
}

# First install: no OBS in the prefix, so the installer warns (silently) and goes on.
check "silent install without OBS (setup.exe /S) exits 0" wine_run 120 wine "$work/setup.exe" /S
wine_settle
check "the DLL, every locale/*.ini and uninstall.exe are in $plugin_win" installed_files_ok
check "Add/Remove Programs key $uninstall_key has every value" uninstall_key_ok ""

# The loader, and stubs of obs.dll and obs-frontend-api.dll exporting exactly the plugin's
# imports as one no-op function.
mkdir -p "$root$work/loader" "$root$work/bare"
"$MINGW-gcc" -std=c11 -O2 -Wall -Wextra -Werror -o "$root$work/loader/test-loader.exe" "$here/test-loader.c"
cp "$root$work/loader/test-loader.exe" "$root$work/bare/"
printf 'void stub_noop(void);\nvoid stub_noop(void) {}\n' >"$root$work/loader/stub.c"
for lib in obs obs-frontend-api; do
    names=$obs_imports
    [ "$lib" = obs ] || names=$frontend_imports
    {
        printf 'LIBRARY %s.dll\nEXPORTS\n' "$lib"
        echo "$names" | awk 'NF { print "    " $1 " = stub_noop" }'
    } >"$root$work/loader/$lib.def"
    "$MINGW-gcc" -shared -o "$root$work/loader/$lib.dll" "$root$work/loader/stub.c" "$root$work/loader/$lib.def"
done
entries=(obs_module_load obs_module_ver obs_module_set_pointer obs_module_set_locale
    obs_module_free_locale obs_module_name)
loader_out=$(wine_run 60 wine "$work/loader/test-loader.exe" "$plugin_win\\bin\\64bit\\obs-goaway.dll" "${entries[@]}" 2>&1 | tr -d '\r') && loader_rc=0 || loader_rc=$?
awk '{ print "    loader: " $0 }' <<<"$loader_out"
check "LoadLibrary of the installed DLL with the stub obs.dll finds ${entries[*]}" test "$loader_rc" = 0
major=$(sed -n 's/^#define LIBOBS_API_MAJOR_VER *\([0-9]*\).*/\1/p' "${OBS_SYS_INCLUDE_DIR:-/usr/include/obs}/obs-config.h")
ver=$(echo "$loader_out" | sed -n 's/^obs_module_ver() = \([0-9]*\)$/\1/p')
# obs-wrapper's obs_module_ver returns the major version alone; LIBOBS_API_VER has it on top.
module_ver_ok() { [ -n "$ver" ] && { [ "$ver" = "$major" ] || [ $((ver >> 24)) = "$major" ]; }; }
check "obs_module_ver() runs and returns libobs $major's version (${ver:-nothing})" module_ver_ok
# Control: without the stubs the plugin must not load, or the check above proved nothing.
bare_out=$(wine_run 60 wine "$work/bare/test-loader.exe" "$plugin_win\\bin\\64bit\\obs-goaway.dll" obs_module_load 2>&1 | tr -d '\r') || true
check "without obs.dll the DLL does not load ($(echo "$bare_out" | head -n 1))" grep -q '^FAIL LoadLibrary' <<<"$bare_out"

# Second install over the first, with an OBS to find through HKLM\SOFTWARE\OBS Studio.
mkdir -p "$drive_c/OBS/bin/64bit"
cp "$root$work/bare/test-loader.exe" "$drive_c/OBS/bin/64bit/obs64.exe"
wine_run 60 wine reg add 'HKLM\SOFTWARE\OBS Studio' /ve /d 'C:\OBS' /f >/dev/null
check "silent install over it, OBS in C:\\OBS, exits 0" wine_run 120 wine "$work/setup.exe" /S
wine_settle
check "the upgrade left the files right" installed_files_ok
check "the key names OBS's icon (DisplayIcon), the rest unchanged" uninstall_key_ok 'C:\OBS\bin\64bit\obs64.exe,0'

# Silent uninstall, exactly as the registry says.
quiet=$(reg_value "$(reg_values "$uninstall_key" || true)" QuietUninstallString)
uninstaller=$(echo "$quiet" | sed -n 's/^"\([^"]*\)" \/S$/\1/p')
if [ -n "$uninstaller" ]; then
    check "silent uninstall ($quiet) exits 0" wine_run 120 wine "$uninstaller" /S
    wine_settle
else
    fail "QuietUninstallString '$quiet' is not '\"...uninstall.exe\" /S'"
fi
leftovers=$(cd "$drive_c/ProgramData" && { find obs-studio 2>/dev/null || true; } | tr '\n' ' ')
check "every file and directory is gone (ProgramData\\obs-studio included)${leftovers:+ (left: $leftovers)}" test -z "$leftovers"
key_gone() {
    local out
    out=$(wine_run 60 wine reg query "$uninstall_key" 2>&1 | tr -d '\r') && return 1
    grep -qi 'unable to find' <<<"$out"
}
check "the uninstall key is gone" key_gone
check "OBS itself is untouched" test -f "$drive_c/OBS/bin/64bit/obs64.exe"

echo
echo "windows installer test: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
    echo "FAIL"
    exit 1
fi
echo "PASS"
