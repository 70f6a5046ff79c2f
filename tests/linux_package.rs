//! The Linux packaging: `installer/build.sh` builds the Debian package, which holds exactly the
//! expected files and fields, passes lintian, installs with apt and removes without leaving
//! anything behind; `installer/linux/install-user.sh` and `uninstall-user.sh` install into and
//! clean a user's OBS configuration. While the package is installed, Debian 12's OBS 29
//! loads the plugin from the system directories and streams through one Go Away move.
//!
//! Needs (Debian 12): root (apt installs the package), `dpkg-dev`, `binutils`, `lintian`,
//! `libobs-dev`, `clang`, `pkg-config`, `obs-studio` (which brings libobs0, the package's
//! dependency) and `xvfb` (for OBS). The package build reuses `target/release`
//! (`cargo build --release --lib`).
#![cfg(all(target_os = "linux", target_arch = "x86_64", feature = "obs"))]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::obs::{run_scenario, ObsVersion, OnStart, ProfileBuilder, ScenarioTimes, SCENARIO_KEY};
use common::require;
use serde_json::json;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PACKAGE: &str = "obs-goaway";
const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/obs-plugins/obs-goaway.so";
const DATA_DIR: &str = "/usr/share/obs/obs-plugins/obs-goaway";
const DOC_DIR: &str = "/usr/share/doc/obs-goaway";
const OVERRIDES: &str = "/usr/share/lintian/overrides/obs-goaway";

fn root() -> &'static Path {
    Path::new(ROOT)
}

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
fn check(command: &mut Command) -> String {
    let shown = format!("{command:?}");
    let output = run(command);
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn is_root() -> bool {
    check(Command::new("id").arg("-u")).trim() == "0"
}

/// The package, built once per test process by `installer/build.sh`.
struct Built {
    deb: PathBuf,
    /// The unstripped plugin the package was made from.
    so: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let start = Instant::now();
        let output = run(Command::new(root().join("installer/build.sh")).current_dir(root()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "installer/build.sh failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let last = stdout.lines().last().expect("build.sh printed nothing");
        let deb = PathBuf::from(last);
        assert!(
            deb.is_file(),
            "build.sh's last line is not the package: {last}"
        );
        eprintln!("[timing] installer/build.sh: {:.1?}", start.elapsed());
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from);
        Built {
            deb,
            so: target.join("release/libobs_goaway.so"),
        }
    })
}

/// The Debian revision of `installer/linux/changelog`'s top entry: the package version is
/// `<Cargo version>-<revision>`.
fn package_version() -> String {
    let version = check(
        Command::new("dpkg-parsechangelog")
            .args(["-S", "Version", "-l"])
            .arg(root().join("installer/linux/changelog")),
    );
    let version = version.trim().to_string();
    assert!(
        version.starts_with(&format!("{}-", VERSION.replacen('-', "~", 1))),
        "installer/linux/changelog's top entry ({version}) is not for Cargo.toml's version {VERSION}"
    );
    version
}

/// The regular files the package must hold, as `dpkg-deb -c` shows them (`./usr/...`).
fn expected_files() -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        PLUGIN,
        "/usr/share/doc/obs-goaway/copyright",
        "/usr/share/doc/obs-goaway/changelog.Debian.gz",
        OVERRIDES,
    ]
    .iter()
    .map(|p| format!(".{p}"))
    .collect();
    let locales = std::fs::read_dir(root().join("locale")).expect("locale/");
    for entry in locales {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".ini") {
            files.insert(format!(".{DATA_DIR}/locale/{name}"));
        }
    }
    assert!(files.contains(&format!(".{DATA_DIR}/locale/en-US.ini")));
    files
}

/// Only one test at a time changes the system's packages.
fn system_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn dpkg_status(package: &str) -> String {
    let output = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn apt_get(args: &[&str]) {
    let start = Instant::now();
    check(
        Command::new("apt-get")
            .args(["-y", "-q", "-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    eprintln!(
        "[timing] apt-get {}: {:.1?}",
        args.join(" "),
        start.elapsed()
    );
}

/// The system package installed with apt, removed again when dropped (also when a test
/// fails): a leftover system copy would make OBS load the plugin twice in later tests.
///
/// This is the hook for a test that runs OBS with the system-installed plugin:
/// `let _installed = SystemInstall::new(&built().deb);` then start OBS.
struct SystemInstall {
    _lock: MutexGuard<'static, ()>,
    removed: bool,
}

impl SystemInstall {
    fn new(deb: &Path) -> Self {
        let lock = system_lock();
        assert!(
            is_root(),
            "this test installs the Debian package with apt-get and must run as root (CI does)"
        );
        let status = dpkg_status(PACKAGE);
        assert!(
            !status.contains("installed") || status.contains("not-installed"),
            "{PACKAGE} is already installed here ({status}); this test installs and removes it: \
             apt-get remove {PACKAGE} first"
        );
        // Constructed first: if apt-get fails half-way, dropping it purges what got in.
        let install = Self {
            _lock: lock,
            removed: false,
        };
        apt_get(&["install", deb.to_str().expect("UTF-8 path")]);
        install
    }

    fn remove(mut self) {
        self.removed = true;
        apt_get(&["remove", PACKAGE]);
    }
}

impl Drop for SystemInstall {
    fn drop(&mut self) {
        if !self.removed {
            let _ = Command::new("apt-get")
                .args(["-y", "-q", "purge", PACKAGE])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Missing prerequisites stop the build before cargo runs, one line each naming the package.
#[test]
fn build_fails_fast_without_libobs_dev() {
    let start = Instant::now();
    let output = run(Command::new(root().join("installer/build.sh"))
        .current_dir(root())
        // pkg-config then finds no .pc file at all: as on a machine without libobs-dev.
        .env("PKG_CONFIG_LIBDIR", "/nonexistent")
        .env_remove("PKG_CONFIG_PATH"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "build.sh succeeded without libobs"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == "obs-goaway: libobs-dev is missing: apt-get install libobs-dev"),
        "no one-line message naming libobs-dev:\n{stderr}"
    );
    assert!(
        !stderr.contains("Compiling") && !stderr.contains("cargo build"),
        "build.sh started the build:\n{stderr}"
    );
    assert!(output.stdout.is_empty(), "build.sh printed a path");
    eprintln!(
        "[timing] failing prerequisite check: {:.1?}",
        start.elapsed()
    );
}

#[test]
fn debian_package_is_complete_lintian_clean_and_removes_cleanly() {
    require("dpkg-deb", "dpkg");
    require("dpkg-parsechangelog", "dpkg-dev");
    require("lintian", "lintian");
    require("readelf", "binutils");
    let version = package_version();
    let deb = &built().deb;
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("{PACKAGE}_{version}_amd64.deb")
    );

    // Contents: exactly the expected files, their directories, root-owned, usual modes.
    let listing = check(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "unexpected dpkg-deb -c line: {line}");
        let (mode, owner, path) = (fields[0], fields[1], fields[5]);
        assert_eq!(owner, "root/root", "{path} is not root-owned");
        if let Some(dir) = path.strip_suffix('/') {
            assert_eq!(mode, "drwxr-xr-x", "{path}");
            dirs.insert(dir.to_string());
        } else {
            assert_eq!(mode, "-rw-r--r--", "{path}");
            files.insert(path.to_string());
        }
    }
    assert_eq!(files, expected_files(), "files in the package");
    let parents: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            Path::new(f)
                .ancestors()
                .skip(1)
                .map(|a| a.display().to_string())
        })
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(
        dirs, parents,
        "directories in the package (no empty or stray ones)"
    );

    // Control fields.
    let field = |name: &str| {
        check(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), PACKAGE);
    assert_eq!(field("Version"), version);
    assert_eq!(field("Architecture"), "amd64");
    assert_eq!(field("Section"), "video");
    assert_eq!(field("Priority"), "optional");
    assert_eq!(field("Enhances"), "obs-studio");
    assert_eq!(field("Homepage"), "");
    assert!(
        field("Maintainer").contains('@'),
        "Maintainer: {}",
        field("Maintainer")
    );
    let depends = field("Depends");
    for wanted in [
        "libc6 (>= ",
        "libgcc-s1",
        "libobs0 (>= 29.0) | libobs0t64 (>= 29.0)",
    ] {
        assert!(
            depends.contains(wanted),
            "Depends lacks {wanted}: {depends}"
        );
    }
    assert!(field("Description").starts_with("lossless RTMP reconnection"));
    assert!(field("Installed-Size")
        .parse::<u64>()
        .is_ok_and(|kib| kib > 100));
    // No maintainer scripts: the control archive holds control and md5sums only.
    let info = check(Command::new("dpkg-deb").arg("-I").arg(deb));
    for script in [
        "preinst",
        "postinst",
        "prerm",
        "postrm",
        "triggers",
        "conffiles",
    ] {
        assert!(
            !info.contains(&format!(" {script} ")),
            "unexpected {script}:\n{info}"
        );
    }
    assert!(info.contains(" md5sums "), "no md5sums:\n{info}");

    // The files themselves.
    let unpacked = tempfile::tempdir().unwrap();
    check(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(unpacked.path()),
    );
    let so = unpacked.path().join(PLUGIN.trim_start_matches('/'));
    let sections = check(Command::new("readelf").arg("-SW").arg(&so));
    assert!(
        !sections.contains(".debug_info") && !sections.contains(".symtab"),
        "plugin not stripped"
    );
    let exports = check(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(&so));
    for symbol in [
        "obs_module_load",
        "obs_module_set_locale",
        "obs_current_module",
    ] {
        assert!(
            exports.contains(symbol),
            "the stripped plugin lost {symbol}"
        );
    }
    let copyright =
        std::fs::read_to_string(unpacked.path().join("usr/share/doc/obs-goaway/copyright"))
            .unwrap();
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    assert!(copyright.contains("\nFiles: *\n"));
    assert!(copyright.contains("\nLicense: GPL-2.0-or-later\n"));
    assert!(copyright.contains("/usr/share/common-licenses/GPL-2"));
    assert!(
        copyright.contains("\nFiles: crates/obs-wrapper-"),
        "statically linked crates are listed"
    );
    let changelog = check(
        Command::new("gzip").arg("-dc").arg(
            unpacked
                .path()
                .join("usr/share/doc/obs-goaway/changelog.Debian.gz"),
        ),
    );
    assert!(
        changelog.starts_with(&format!("obs-goaway ({version}) ")),
        "{changelog}"
    );
    let ini = unpacked.path().join(format!(
        "{}/locale/en-US.ini",
        DATA_DIR.trim_start_matches('/')
    ));
    assert_eq!(
        std::fs::read(ini).unwrap(),
        std::fs::read(root().join("locale/en-US.ini")).unwrap()
    );

    // lintian: nothing at warning or error level; every override still used.
    let start = Instant::now();
    let output = run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--display-info", "--pedantic"])
        .arg(deb));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("[timing] lintian: {:.1?}", start.elapsed());
    eprintln!("lintian:\n{report}");
    assert!(
        output.status.success(),
        "lintian failed ({}):\n{report}",
        output.status
    );
    assert!(
        !report
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "lintian errors or warnings:\n{report}"
    );
    assert!(
        !report.contains("unused-override") && !report.contains("mismatched-override"),
        "stale lintian overrides:\n{report}"
    );

    // Install with apt, check, remove, check that nothing is left.
    let installed = SystemInstall::new(deb);
    assert!(dpkg_status(PACKAGE).starts_with("install ok installed"));
    for file in &files {
        let path = Path::new(file.trim_start_matches('.'));
        assert!(path.is_file(), "{} was not installed", path.display());
    }
    assert_eq!(
        std::fs::read(PLUGIN).unwrap(),
        std::fs::read(&so).unwrap(),
        "the installed plugin is the packaged one"
    );
    obs_streams_with_the_installed_plugin(ObsVersion::Host, "29.0.");
    installed.remove();
    let status = dpkg_status(PACKAGE);
    assert!(
        !status.contains("installed") || status.contains("not-installed"),
        "dpkg still knows {PACKAGE}: {status}"
    );
    for path in files
        .iter()
        .map(|f| f.trim_start_matches('.'))
        .chain([DATA_DIR, DOC_DIR])
    {
        assert!(
            !Path::new(path).exists(),
            "{path} is still there after apt-get remove"
        );
    }
}

/// `version`'s OBS with a profile that installs no plugin of its own: it loads obs-goaway.so
/// from the system plugin directory with its en-US text, registers its output and service
/// (built with libobs headers whose version starts with `headers`), and streams through them
/// to the reference ingest, which sends one Go Away: the plugin moves to a new connection
/// without losing, repeating or restarting a frame.
fn obs_streams_with_the_installed_plugin(version: ObsVersion, headers: &str) {
    let times = ScenarioTimes::go_away_only(Duration::from_secs(4), Duration::from_secs(9));
    let start = Instant::now();
    let outcome = run_scenario(
        version,
        |server| json!({"type": "goaway_rtmp_service", "settings": {"server": server, "key": SCENARIO_KEY}}),
        |profile| profile,
        &times,
    );
    eprintln!(
        "[timing] {version} run with the installed plugin: {:.1?}",
        start.elapsed()
    );
    eprintln!("{outcome}");
    let log = &outcome.exit.log;
    let loaded = format!(
        "[obs-goaway] obs-goaway {VERSION} loaded in libobs {} (built with libobs {headers}",
        version.version()
    );
    assert!(log.contains(&loaded), "no '{loaded}' in OBS's log:\n{log}");
    // What libobs says when it refuses a registration (a missing required field, a size
    // larger than its own struct).
    assert!(
        !log.lines().any(|l| l.contains("obs_register_output failed")
            || l.contains("obs_register_service failed")
            || (l.contains("goaway_rtmp") && l.contains("not found"))),
        "OBS refused the plugin's output or service:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.trim_end().ends_with(" obs-goaway.so")),
        "obs-goaway.so is not among OBS's loaded modules:\n{log}"
    );
    // libobs says so when a module's data directory has no en-US.ini.
    assert!(
        !log.lines()
            .any(|l| l.contains("Failed to load") && l.contains("obs-goaway")),
        "OBS could not load the plugin's text:\n{log}"
    );
    assert!(
        log.contains("[obs-goaway] move:"),
        "the plugin did not move:\n{log}"
    );
    assert_eq!(outcome.signals_sent, 1, "one Go Away\n{outcome}");
    assert_eq!(
        outcome.connections, 2,
        "one move: two connections\n{outcome}"
    );
    assert_eq!(
        outcome.video_lost_in_gaps, 0,
        "frames lost in the move\n{outcome}"
    );
    assert_eq!(outcome.duplicates, 0, "frames repeated\n{outcome}");
    assert!(
        !outcome.timestamps_restarted,
        "timestamps restarted\n{outcome}"
    );
}

/// Every file and directory under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn user_script(name: &str, home: &Path, args: &[&Path]) -> Output {
    let output = run(Command::new(root().join("installer/linux").join(name))
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME"));
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn user_install_is_idempotent_and_uninstall_removes_exactly_it() {
    let so = &built().so;
    let home = tempfile::tempdir().unwrap();
    // Something of OBS's own that must survive: its configuration and another plugin.
    let config = home.path().join(".config/obs-studio");
    std::fs::create_dir_all(config.join("basic/profiles/P")).unwrap();
    std::fs::write(config.join("global.ini"), "[General]\n").unwrap();
    std::fs::create_dir_all(config.join("plugins/other/bin/64bit")).unwrap();
    std::fs::write(config.join("plugins/other/bin/64bit/other.so"), "").unwrap();
    let before = tree(home.path());

    let start = Instant::now();
    let output = user_script("install-user.sh", home.path(), &[so]);
    eprintln!("[timing] install-user.sh: {:.1?}", start.elapsed());
    let base = config.join("plugins/obs-goaway");
    let plugin = base.join("bin/64bit/obs-goaway.so");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().last(),
        Some(plugin.to_str().unwrap()),
        "install-user.sh prints the installed plugin last"
    );
    let mut expected: BTreeSet<String> = [
        "bin",
        "bin/64bit",
        "bin/64bit/obs-goaway.so",
        "data",
        "data/locale",
        ".install-user-manifest",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    for file in expected_files() {
        if let Some(name) = file.strip_prefix(&format!(".{DATA_DIR}/locale/")) {
            expected.insert(format!("data/locale/{name}"));
        }
    }
    assert_eq!(tree(&base), expected, "files under {}", base.display());
    let sections = check(Command::new("readelf").arg("-SW").arg(&plugin));
    assert!(
        !sections.contains(".debug_info"),
        "the user copy is stripped"
    );
    assert_eq!(
        std::fs::read(base.join("data/locale/en-US.ini")).unwrap(),
        std::fs::read(root().join("locale/en-US.ini")).unwrap()
    );

    // Again: same result.
    let installed = tree(home.path());
    let manifest = std::fs::read_to_string(base.join(".install-user-manifest")).unwrap();
    user_script("install-user.sh", home.path(), &[so]);
    assert_eq!(
        tree(home.path()),
        installed,
        "a second install changes the tree"
    );
    assert_eq!(
        std::fs::read_to_string(base.join(".install-user-manifest")).unwrap(),
        manifest
    );

    // Uninstall: back to exactly what was there; then again: nothing to do.
    user_script("uninstall-user.sh", home.path(), &[]);
    assert_eq!(
        tree(home.path()),
        before,
        "uninstall left or removed something else"
    );
    let output = user_script("uninstall-user.sh", home.path(), &[]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing to remove"));

    // OBS 29 loads what install-user.sh installed, with its text (no system copy meanwhile).
    let profile = ProfileBuilder::new(ObsVersion::Host).build();
    user_script("install-user.sh", profile.home(), &[so]);
    let system = system_lock();
    let start = Instant::now();
    let mut obs = profile.start(OnStart::Idle);
    let loaded = format!("[obs-goaway] obs-goaway {VERSION} loaded in libobs");
    obs.wait_for_log(&loaded, Duration::from_secs(30));
    obs.wait_for_log("Loaded Modules:", Duration::from_secs(30));
    let exit = obs.stop();
    drop(system);
    eprintln!(
        "[timing] OBS run with the per-user plugin: {:.1?}",
        start.elapsed()
    );
    assert!(
        exit.log
            .lines()
            .any(|l| l.trim_end().ends_with(" obs-goaway.so")),
        "obs-goaway.so is not among OBS's loaded modules:\n{}",
        exit.log
    );
    assert!(
        !exit
            .log
            .lines()
            .any(|l| l.contains("Failed to load") && l.contains("obs-goaway")),
        "OBS could not load the plugin's text:\n{}",
        exit.log
    );

    // Into an empty home: uninstall removes the directories install created, too.
    let empty = tempfile::tempdir().unwrap();
    user_script("install-user.sh", empty.path(), &[so]);
    user_script("uninstall-user.sh", empty.path(), &[]);
    assert!(
        tree(empty.path()).is_empty(),
        "left behind: {:?}",
        tree(empty.path())
    );
}

/// A command in a Debian root, in a mount namespace of its own (`unshare`) holding the root's
/// `/proc` and `/dev` and `binds` (host directory, directory in the root; read-only): the
/// mounts end with the namespace when the command ends, whatever happens to the test.
fn in_root(root: &Path, binds: &[(&Path, &Path)], env: &[(&str, String)], argv: &[&str]) -> Output {
    const MOUNT_AND_CHROOT: &str = r#"
root=$1; shift
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
while [ "$1" != -- ]; do
    mount --bind -o ro "$1" "$root$2"
    shift 2
done
shift
exec chroot "$root" "$@""#;
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-euc"])
        .arg(MOUNT_AND_CHROOT)
        .arg("sh")
        .arg(root);
    for (host, guest) in binds {
        command.arg(host).arg(guest);
    }
    command
        .args(["--", "env", "-i"])
        .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .arg("LANG=C.UTF-8")
        .arg("DEBIAN_FRONTEND=noninteractive")
        // Later assignments win: `env` may name its own PATH.
        .args(env.iter().map(|(name, value)| format!("{name}={value}")))
        .args(argv);
    run(&mut command)
}

/// `in_root` that must succeed; returns its stdout.
fn check_in_root(root: &Path, argv: &[&str]) -> String {
    let output = in_root(root, &[], &[], argv);
    assert!(
        output.status.success(),
        "{argv:?} in {} failed ({}):\n{}{}",
        root.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What dpkg in `root` knows of the package (empty when nothing: dpkg-query then fails).
fn root_dpkg_status(root: &Path) -> String {
    let output = in_root(
        root,
        &[],
        &[],
        &["dpkg-query", "-W", "-f=${Status}", PACKAGE],
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The package installed with apt in a Debian root; purged when dropped (also when a test
/// fails), so that the root's other OBS tests never load a second copy.
struct RootInstall<'a> {
    root: &'a Path,
    removed: bool,
}

impl<'a> RootInstall<'a> {
    /// `deb` is a path inside `root`.
    fn new(root: &'a Path, deb: &Path) -> Self {
        let status = root_dpkg_status(root);
        assert!(
            !status.contains(" installed"),
            "{PACKAGE} is already installed in {} ({status}): this test installs and removes it",
            root.display()
        );
        let install = Self {
            root,
            removed: false,
        };
        let start = Instant::now();
        check_in_root(
            root,
            &[
                "apt-get",
                "install",
                "-y",
                "-q",
                deb.to_str().expect("UTF-8 path"),
            ],
        );
        eprintln!(
            "[timing] apt-get install in {}: {:.1?}",
            root.display(),
            start.elapsed()
        );
        install
    }

    fn remove(mut self) {
        self.removed = true;
        check_in_root(self.root, &["apt-get", "remove", "-y", "-q", PACKAGE]);
        let status = root_dpkg_status(self.root);
        assert!(
            !status.contains(" installed"),
            "dpkg still knows {PACKAGE} in {}: {status}",
            self.root.display()
        );
        for path in [PLUGIN, DATA_DIR, DOC_DIR] {
            let inside = self.root.join(path.trim_start_matches('/'));
            assert!(
                !inside.exists(),
                "{} is still there after apt-get remove",
                inside.display()
            );
        }
    }
}

impl Drop for RootInstall<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = in_root(
                self.root,
                &[],
                &[],
                &["apt-get", "purge", "-y", "-q", PACKAGE],
            );
        }
    }
}

/// A directory (`$CARGO_HOME`, `$RUSTUP_HOME`) of the host's Rust toolchain.
fn rust_home(variable: &str, default: &str) -> PathBuf {
    let dir = std::env::var_os(variable).map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(default),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "building in a Debian root bind-mounts the host's Rust toolchain (rustup): no {}",
        dir.display()
    );
    dir
}

/// `installer/build.sh` run inside `version`'s Debian root as a user of that release runs
/// it: with the release's own libobs-dev, clang, pkg-config and dpkg-dev (added to the root
/// by `.ci/<suite>-root.sh`) and Rust from rustup (the host's, bind-mounted read-only with
/// its crate cache: no network). The source tree is mounted read-only; the build goes to its
/// own target directory under `work`, so nothing is shared with the host's build or the
/// other root's. Returns the package's path inside the root.
fn build_in_root(debian: &Path, work: &Path) -> PathBuf {
    let guest = Path::new("/").join(work.strip_prefix(debian).expect("work is in the root"));
    let [src, cargo, rustup] = ["src", "cargo", "rustup"].map(|name| {
        std::fs::create_dir(work.join(name)).unwrap();
        guest.join(name)
    });
    let env = [
        (
            "PATH",
            format!(
                "{}:/usr/bin:/bin:/usr/sbin:/sbin",
                cargo.join("bin").display()
            ),
        ),
        ("HOME", guest.display().to_string()),
        ("CARGO_HOME", cargo.display().to_string()),
        ("RUSTUP_HOME", rustup.display().to_string()),
        (
            "CARGO_TARGET_DIR",
            guest.join("target").display().to_string(),
        ),
        ("CARGO_NET_OFFLINE", "true".to_string()),
    ];
    let start = Instant::now();
    let output = in_root(
        debian,
        &[
            (root(), &src),
            (&rust_home("CARGO_HOME", ".cargo"), &cargo),
            (&rust_home("RUSTUP_HOME", ".rustup"), &rustup),
        ],
        &env,
        &[
            "sh",
            "-c",
            &format!("cd {} && installer/build.sh", src.display()),
        ],
    );
    eprintln!(
        "[timing] installer/build.sh in {}: {:.1?}",
        debian.display(),
        start.elapsed()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "installer/build.sh failed in {} ({}); a missing tool or package is named below \
         (.ci/<suite>-root.sh adds them):\n{stdout}{}",
        debian.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let deb = PathBuf::from(stdout.lines().last().expect("build.sh printed nothing"));
    assert!(
        deb.starts_with(&guest) && debian.join(deb.strip_prefix("/").unwrap()).is_file(),
        "build.sh's last line is not a package under {}: {}",
        guest.display(),
        deb.display()
    );
    deb
}

/// In `version`'s Debian root: the package built on Debian 12 installs and streams through
/// a move in that release's OBS; then `installer/build.sh` with the release's own headers
/// builds a package that installs, registers its output and service and streams through a
/// move as well; each is removed again.
fn release_runs_both_packages(version: ObsVersion) {
    version.require();
    require("unshare", "util-linux");
    let root = version.root().expect("a Debian root");
    let work = tempfile::Builder::new()
        .prefix("obs-goaway-build-")
        .tempdir_in(root.join("tmp"))
        .unwrap();

    let debian_12 = work.path().join("debian-12.deb");
    std::fs::copy(&built().deb, &debian_12).unwrap();
    let guest = |path: &Path| Path::new("/").join(path.strip_prefix(&root).unwrap());
    let installed = RootInstall::new(&root, &guest(&debian_12));
    obs_streams_with_the_installed_plugin(version, "29.0.");
    installed.remove();

    let deb = build_in_root(&root, work.path());
    let headers = format!("{} ", version.version());
    let installed = RootInstall::new(&root, &deb);
    obs_streams_with_the_installed_plugin(version, &headers);
    installed.remove();
}

/// Debian 13: libobs-dev 30.2.3 and OBS 30.2.3.
#[test]
fn trixie_streams_with_the_debian_12_package_and_with_its_own_build() {
    release_runs_both_packages(ObsVersion::Trixie);
}

/// Debian sid: libobs-dev 32.2.2 (whose libobs.pc names /usr/include, not /usr/include/obs)
/// and OBS 32.2.2.
#[test]
fn sid_streams_with_the_debian_12_package_and_with_its_own_build() {
    release_runs_both_packages(ObsVersion::Sid);
}
