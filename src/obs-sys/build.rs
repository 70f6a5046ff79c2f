//! Generates bindings from the libobs headers installed on the build machine.
//!
//! There is deliberately no fallback: bindings older than the OBS that loads the plugin
//! mean wrong struct layouts, which OBS accepts silently. A missing or too old libobs
//! fails the build with a message naming the package to install.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// The oldest libobs the plugin supports (Debian 12's OBS).
const MIN_LIBOBS: &str = "29.0";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=OBS_SYS_INCLUDE_DIR");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let mut clang_args = Vec::new();
    if target_os == "windows" {
        // Cross-builds: the headers come from OBS_SYS_INCLUDE_DIR (libobs-dev's headers
        // work for every platform), the import libraries from OBS_SYS_LIB_DIR.
        let include = env::var("OBS_SYS_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/obs".into());
        clang_args.push(format!("-I{include}"));
        // mingw-w64's math.h has a union over the x87 `long double`, which bindgen turns
        // into a u128 whose alignment fails bindgen's own layout check. libobs's API has no
        // `long double`: a 64-bit one changes nothing the plugin uses.
        clang_args.push("-mlong-double-64".into());
        if let Ok(lib_dir) = env::var("OBS_SYS_LIB_DIR") {
            println!("cargo:rustc-link-search=native={lib_dir}");
        }
        println!("cargo:rerun-if-env-changed=OBS_SYS_LIB_DIR");
        println!("cargo:rustc-link-lib=dylib=obs");
        println!("cargo:rustc-link-lib=dylib=obs-frontend-api");
    } else {
        let libobs = pkg_config::Config::new()
            .atleast_version(MIN_LIBOBS)
            .probe("libobs")
            .unwrap_or_else(|e| {
                panic!(
                    "\n\nobs-sys: libobs {MIN_LIBOBS} or newer is needed to build the OBS plugin \
                     (on Debian/Ubuntu: apt-get install libobs-dev; or build without the plugin: \
                     cargo build --no-default-features).\npkg-config said: {e}\n"
                )
            });
        // pkg-config leaves system directories such as /usr/include out of --cflags: its
        // includedir variable names the directory even then.
        let mut candidates = libobs.include_paths.clone();
        candidates.extend(
            pkg_config::get_variable("libobs", "includedir")
                .ok()
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
        );
        let headers = obs_header_dir(&candidates).unwrap_or_else(|| {
            panic!(
                "\n\nobs-sys: libobs {} is installed but obs.h is in none of its include \
                 directories ({}, each also with obs/): install the complete libobs-dev \
                 (on Debian/Ubuntu: apt-get install libobs-dev).\n",
                libobs.version,
                shown(&candidates)
            )
        });
        clang_args.push(format!("-I{}", headers.display()));
        for path in &libobs.include_paths {
            clang_args.push(format!("-I{}", path.display()));
        }
        for (name, value) in &libobs.defines {
            clang_args.push(match value {
                Some(value) => format!("-D{name}={value}"),
                None => format!("-D{name}"),
            });
        }
        // The frontend API ships with libobs-dev but has no pkg-config file of its own.
        println!("cargo:rustc-link-lib=dylib=obs-frontend-api");
    }
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        // math.h and fenv.h constants, otherwise defined twice.
        .blocklist_item("FE_.*")
        .blocklist_item("FP_.*")
        // obs-wrapper 0.4.1 uses `size_t` and `Default` on the generated types.
        .size_t_is_usize(false)
        .derive_default(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("obs-sys: bindgen could not process the libobs headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("obs-sys: cannot write the bindings");
    if target_os == "windows" {
        raw_audio2_idx_as_obs_wrapper_declares_it(&out.join("bindings.rs"));
    }
    headers_cfg(&out.join("bindings.rs"));
}

/// The directory holding `obs.h` among libobs's include directories, each taken as is
/// and with `obs/` appended: Debian 12's and 13's libobs.pc name `/usr/include/obs`, sid's
/// (32.x) names `/usr/include` while the headers stay in `/usr/include/obs`.
fn obs_header_dir(include_paths: &[PathBuf]) -> Option<PathBuf> {
    include_paths
        .iter()
        .flat_map(|path| [path.clone(), path.join("obs")])
        .find(|dir| dir.join("obs.h").is_file())
}

fn shown(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "pkg-config names none".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cfg(libobs_headers_29_1)` when the headers are libobs 29.1 or newer: their
/// `obs_output_info` and `obs_service_info` already end with the fields 29.1 appended, which
/// `lib.rs` then checks against its own description of those fields.
fn headers_cfg(bindings: &Path) {
    println!("cargo:rustc-check-cfg=cfg(libobs_headers_29_1)");
    let text = fs::read_to_string(bindings).expect("obs-sys: cannot read the bindings");
    let constant = |name: &str| -> u32 {
        let prefix = format!("pub const {name}: u32 = ");
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&prefix))
            .and_then(|rest| rest.trim_end_matches(';').parse().ok())
            .unwrap_or_else(|| panic!("obs-sys: the libobs headers define no {name}"))
    };
    let version = (
        constant("LIBOBS_API_MAJOR_VER"),
        constant("LIBOBS_API_MINOR_VER"),
    );
    if version >= (29, 1) {
        println!("cargo:rustc-cfg=libobs_headers_29_1");
    }
}

/// obs-wrapper 0.4.1 declares `obs_output_info::raw_audio2`'s `idx` (a C `size_t`) as
/// `c_ulong`, which is 32 bits on Windows, so it does not compile against correct bindings.
/// There the binding declares that argument as obs-wrapper does; the call stays right: x64
/// passes it in a 64-bit register whose low half the callee reads, and the index (an audio
/// mix, 0 to 5) fits. Nothing else changes; the plugin does not use raw_audio2.
fn raw_audio2_idx_as_obs_wrapper_declares_it(path: &Path) {
    let text = fs::read_to_string(path).expect("obs-sys: cannot read the bindings");
    let field = text
        .find("pub raw_audio2")
        .expect("obs-sys: obs_output_info::raw_audio2 is not in the bindings");
    let idx = field
        + text[field..]
            .find("size_t")
            .expect("obs-sys: raw_audio2 has no size_t argument");
    assert!(
        text[field..idx].contains("idx") && !text[field..idx].contains(')'),
        "obs-sys: raw_audio2's first size_t is not its idx argument"
    );
    let fixed = format!(
        "{}::std::os::raw::c_ulong{}",
        &text[..idx],
        &text[idx + "size_t".len()..]
    );
    fs::write(path, fixed).expect("obs-sys: cannot write the bindings");
}
