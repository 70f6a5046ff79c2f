//! The module's translations: OBS calls `obs_module_set_locale` with the user's language
//! and the plugin reads its texts from `data/locale/<lang>.ini` (en-US for missing keys).
//! obs-wrapper does not provide these exports, so they live here.

use std::ffi::{c_char, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use obs_sys::{lookup_t, obs_module_load_locale, text_lookup_destroy, text_lookup_getstr};

use super::ffi::{cstr, guard};

static LOOKUP: AtomicPtr<lookup_t> = AtomicPtr::new(ptr::null_mut());

/// Exported for OBS: loads the texts of `locale`.
#[no_mangle]
pub(crate) extern "C" fn obs_module_set_locale(locale: *const c_char) {
    guard("obs_module_set_locale", (), || {
        // SAFETY: OBS passes a valid locale name; the module pointer was set before.
        let lookup = unsafe {
            obs_module_load_locale(super::entry::obs_current_module(), cstr!("en-US"), locale)
        };
        let old = LOOKUP.swap(lookup, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: the lookup was made by obs_module_load_locale and is no longer shared.
            unsafe { text_lookup_destroy(old) };
        }
    });
}

/// Exported for OBS: frees the texts.
#[no_mangle]
pub(crate) extern "C" fn obs_module_free_locale() {
    guard("obs_module_free_locale", (), free);
}

pub(crate) fn free() {
    let old = LOOKUP.swap(ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: as above.
        unsafe { text_lookup_destroy(old) };
    }
}

/// The translation of `key` (a NUL-terminated literal), valid until the locale changes;
/// the key itself when there is none.
pub(crate) fn text_ptr(key: &'static [u8]) -> *const c_char {
    let key_ptr = key.as_ptr().cast::<c_char>();
    let lookup = LOOKUP.load(Ordering::Acquire);
    let mut out: *const c_char = ptr::null();
    // SAFETY: lookup is NULL or live; key is NUL-terminated (checked by `text`'s callers
    // through the `tr!` macro).
    if !lookup.is_null() && unsafe { text_lookup_getstr(lookup, key_ptr, &mut out) } {
        return out;
    }
    key_ptr
}

/// The translation of `key` as Rust text.
pub(crate) fn text(key: &'static [u8]) -> String {
    // SAFETY: text_ptr returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(text_ptr(key)) }
        .to_string_lossy()
        .into_owned()
}

/// `tr!("Key")`: the key as a NUL-terminated byte literal for [`text`] / [`text_ptr`].
macro_rules! tr {
    ($key:literal) => {
        concat!($key, "\0").as_bytes()
    };
}
pub(crate) use tr;

/// The translation of `key` with `detail` in place of `%1`: a localized sentence around a
/// technical detail that stays as the session wrote it (a sentence without `%1` leaves the
/// detail to the log).
pub(crate) fn with_detail(key: &'static [u8], detail: &dyn std::fmt::Display) -> String {
    text(key).replace("%1", &detail.to_string())
}
