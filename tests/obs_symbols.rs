//! The plugin imports only libobs functions that every supported OBS has: OBS 32 loads
//! modules with RTLD_NOW, so one import missing from its libobs (such as
//! `obs_service_get_url`, removed in 31) makes the whole plugin fail to load.
#![cfg(feature = "obs")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin built alongside this test: `cargo build` puts it in `target/<profile>/`,
/// `cargo test` only in `target/<profile>/deps/`.
fn plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [
        deps.join("libobs_goaway.so"),
        deps.with_file_name("libobs_goaway.so"),
    ];
    let found = candidates.iter().find(|p| p.exists());
    found
        .unwrap_or_else(|| panic!("the plugin is not built: none of {candidates:?}"))
        .clone()
}

fn nm(args: &[&str], file: &Path) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(args)
        .arg(file)
        .output()
        .expect("nm is required (binutils)");
    assert!(out.status.success(), "nm failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

/// Functions libobs and the frontend API export under `root` (`/` or a Debian root).
fn libobs_exports(root: &Path) -> BTreeSet<String> {
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    let mut names = BTreeSet::new();
    for name in ["libobs.so.0", "libobs-frontend-api.so.0"] {
        let path = lib.join(name);
        assert!(
            path.exists(),
            "{} is missing (Debian 12: apt-get install libobs-dev obs-studio; the other roots: .ci/<suite>-root.sh)",
            path.display()
        );
        names.extend(nm(&["-D", "--defined-only"], &path));
    }
    names
}

/// A Debian root made by `.ci/<suite>-root.sh` (or named by `env`).
fn debian_root(suite: &str, env: &str) -> PathBuf {
    let root = PathBuf::from(
        std::env::var(env).unwrap_or_else(|_| format!("/var/cache/obs-goaway/{suite}")),
    );
    assert!(
        root.join("usr/bin/obs").exists(),
        "the Debian {suite} root with OBS is missing at {} (make it with .ci/{suite}-root.sh)",
        root.display()
    );
    root
}

#[test]
fn every_libobs_import_exists_in_obs_29_30_and_32() {
    let imports: BTreeSet<String> = nm(&["-D", "--undefined-only"], &plugin())
        .into_iter()
        .filter(|s| !s.contains('@') && !s.starts_with("_ITM_") && s != "__gmon_start__")
        .collect();
    assert!(imports.contains("obs_register_output_s"), "{imports:?}");
    for (version, root) in [
        ("29.0.2", PathBuf::from("/")),
        ("30.2.3", debian_root("trixie", "OBS_GOAWAY_TRIXIE_ROOT")),
        ("32.2.2", debian_root("sid", "OBS_GOAWAY_SID_ROOT")),
    ] {
        let exports = libobs_exports(&root);
        let missing: Vec<&String> = imports.difference(&exports).collect();
        assert!(
            missing.is_empty(),
            "OBS {version}'s libobs lacks {missing:?}"
        );
    }
    for removed in [
        "obs_service_get_url",
        "obs_service_get_key",
        "obs_service_get_connect_info",
    ] {
        assert!(
            !imports.contains(removed),
            "{removed} must be looked up at run time"
        );
    }
}

#[test]
fn the_module_exports_what_obs_looks_for() {
    let exports = nm(&["-D", "--defined-only"], &plugin());
    for name in [
        "obs_module_load",
        "obs_module_unload",
        "obs_module_set_pointer",
        "obs_module_ver",
        "obs_module_set_locale",
        "obs_module_free_locale",
        "obs_module_name",
        "obs_module_description",
    ] {
        assert!(exports.contains(name), "{name} is not exported");
    }
}
