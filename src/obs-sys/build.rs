//! Generates bindings from the libobs headers installed on the build machine.
//!
//! There is deliberately no fallback: bindings older than the OBS that loads the plugin
//! mean wrong struct layouts, which OBS accepts silently. A missing or too old libobs
//! fails the build with a message naming the package to install.

use std::env;
use std::path::PathBuf;

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
}
