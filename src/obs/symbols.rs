//! libobs functions that only some supported versions have, looked up at run time.
//!
//! OBS 31 removed `obs_service_get_url`/`_key`/`_username`/`_password`;
//! `obs_service_get_connect_info` exists only from 29.1. Importing either would make the
//! module fail to load somewhere (OBS 32 loads modules with RTLD_NOW), so neither is
//! imported: each is found in the running libobs.

use std::ffi::{c_char, c_void, CStr};

use obs_sys::obs_service_t;

use super::ffi::text;

/// `OBS_SERVICE_CONNECT_INFO_*`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConnectInfo {
    ServerUrl = 0,
    StreamKey = 2,
    Username = 4,
    Password = 6,
}

type ConnectInfoFn = unsafe extern "C" fn(*mut obs_service_t, u32) -> *const c_char;
type GetterFn = unsafe extern "C" fn(*const obs_service_t) -> *const c_char;

#[cfg(unix)]
fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT searches the process's global symbols (libobs is
    // loaded by the OBS executable); a NULL result is handled by the caller.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

#[cfg(windows)]
fn lookup(name: &CStr) -> *mut c_void {
    extern "system" {
        fn GetModuleHandleA(name: *const c_char) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    }
    // SAFETY: obs.dll is loaded in every OBS process; NULL results are handled.
    unsafe {
        let module = GetModuleHandleA(c"obs.dll".as_ptr());
        if module.is_null() {
            return std::ptr::null_mut();
        }
        GetProcAddress(module, name.as_ptr())
    }
}

/// A service's connection detail, through whichever function this libobs has.
///
/// # Safety
/// `service` is a live service.
pub(crate) unsafe fn connect_info(service: *mut obs_service_t, what: ConnectInfo) -> String {
    let modern = lookup(c"obs_service_get_connect_info");
    if !modern.is_null() {
        // SAFETY: the symbol has this signature in every libobs that exports it.
        let get: ConnectInfoFn = std::mem::transmute(modern);
        return text(get(service, what as u32));
    }
    let legacy_name = match what {
        ConnectInfo::ServerUrl => c"obs_service_get_url",
        ConnectInfo::StreamKey => c"obs_service_get_key",
        ConnectInfo::Username => c"obs_service_get_username",
        ConnectInfo::Password => c"obs_service_get_password",
    };
    let legacy = lookup(legacy_name);
    if legacy.is_null() {
        return String::new();
    }
    // SAFETY: as above, for libobs 29.0's getters.
    let get: GetterFn = std::mem::transmute(legacy);
    text(get(service))
}
