//! The Windows plugin and its installer, cross-built here and exercised under wine:
//! `installer/windows/build.sh` (the DLL for x86_64-pc-windows-gnu and the NSIS installer),
//! then `installer/windows/test.sh` (import table, silent install, loading the installed DLL,
//! silent uninstall, in the Debian sid root). Needs root, the Rust target, mingw-w64 and NSIS;
//! see installer/windows/README.md.
#![cfg(feature = "obs")]

use std::path::Path;
use std::process::{Command, Output};

const TARGET: &str = "x86_64-pc-windows-gnu";

fn target_installed() -> bool {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8_lossy(&out.stdout);
    Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

fn run(script: &str) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(root.join(script))
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"))
}

fn report(script: &str, out: &Output) -> String {
    format!(
        "{script} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn windows_installer_builds_installs_loads_and_uninstalls() {
    assert!(
        target_installed(),
        "the Rust target {TARGET} is missing: run `rustup target add {TARGET}` \
         (and apt-get install gcc-mingw-w64-x86-64 nsis)"
    );

    let build = run("installer/windows/build.sh");
    assert!(build.status.success(), "{}", report("build.sh", &build));
    let stdout = String::from_utf8_lossy(&build.stdout);
    let setup = stdout.lines().last().unwrap_or_default();
    assert!(
        setup.ends_with("-windows-x64-setup.exe") && Path::new(setup).is_file(),
        "build.sh's last line is not the installer: {setup:?}"
    );

    let test = run("installer/windows/test.sh");
    let summary = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success() && summary.trim_end().ends_with("PASS"),
        "{}",
        report("test.sh", &test)
    );
}
