//! The panic boundary and C string helpers every callback uses.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs one OBS callback's body: a panic is logged and turned into `fallback` instead of
/// unwinding into OBS (which would abort OBS and lose the user's stream and recording).
pub(crate) fn guard<R>(callback: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!("internal error in {callback}: {message}");
            fallback
        }
    }
}

/// A C string from OBS as Rust text (empty for NULL).
///
/// # Safety
/// `ptr` is NULL or a valid NUL-terminated string for the duration of the call.
pub(crate) unsafe fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    CStr::from_ptr(ptr).to_string_lossy().into_owned()
}

/// A C string for OBS; interior NULs (never valid in OBS text) are dropped.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

/// A `'static` C string literal.
macro_rules! cstr {
    ($s:literal) => {
        concat!($s, "\0").as_ptr().cast::<std::ffi::c_char>()
    };
}
pub(crate) use cstr;
