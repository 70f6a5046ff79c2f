//! libobs functions that only some supported versions have, looked up at run time.
//!
//! OBS 31 removed `obs_service_get_url`/`_key`/`_username`/`_password`;
//! `obs_service_get_connect_info`, `_get_protocol`, `_get_supported_audio_codecs` and
//! `_can_try_to_connect` exist only from 29.1. Importing any of them would make the module
//! fail to load somewhere (OBS 32 loads modules with RTLD_NOW), so none is imported: each
//! is found in the running libobs, once.

use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

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

impl ConnectInfo {
    /// The value libobs 29.1+ passes for this detail, as a variant (29.0 asks through one
    /// getter per detail).
    pub(crate) fn from_raw(what: u32) -> Option<Self> {
        match what {
            0 => Some(Self::ServerUrl),
            2 => Some(Self::StreamKey),
            4 => Some(Self::Username),
            6 => Some(Self::Password),
            _ => None,
        }
    }
}

type ConnectInfoFn = unsafe extern "C" fn(*const obs_service_t, u32) -> *const c_char;
type GetterFn = unsafe extern "C" fn(*const obs_service_t) -> *const c_char;
type CodecsFn = unsafe extern "C" fn(*const obs_service_t) -> *mut *const c_char;
type CanTryFn = unsafe extern "C" fn(*const obs_service_t) -> bool;

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

/// One libobs function, looked up on first use (the address never changes).
struct Symbol {
    name: &'static CStr,
    address: OnceLock<usize>,
}

impl Symbol {
    const fn new(name: &'static CStr) -> Self {
        Self {
            name,
            address: OnceLock::new(),
        }
    }

    /// The function's address, if this libobs has it.
    fn get(&self) -> Option<*mut c_void> {
        let address = *self.address.get_or_init(|| lookup(self.name) as usize);
        (address != 0).then_some(address as *mut c_void)
    }
}

static CONNECT_INFO: Symbol = Symbol::new(c"obs_service_get_connect_info");
static GET_URL: Symbol = Symbol::new(c"obs_service_get_url");
static GET_KEY: Symbol = Symbol::new(c"obs_service_get_key");
static GET_USERNAME: Symbol = Symbol::new(c"obs_service_get_username");
static GET_PASSWORD: Symbol = Symbol::new(c"obs_service_get_password");
static GET_PROTOCOL: Symbol = Symbol::new(c"obs_service_get_protocol");
static AUDIO_CODECS: Symbol = Symbol::new(c"obs_service_get_supported_audio_codecs");
static CAN_TRY: Symbol = Symbol::new(c"obs_service_can_try_to_connect");

/// A service's connection detail as the service returns it (its own string, valid until
/// it is asked again or updated), through whichever function this libobs has; `what` is
/// libobs's `OBS_SERVICE_CONNECT_INFO_*` value (29.0 knows only the four named ones).
///
/// # Safety
/// `service` is a live service.
pub(crate) unsafe fn connect_info_raw(service: *const obs_service_t, what: u32) -> *const c_char {
    if let Some(modern) = CONNECT_INFO.get() {
        // SAFETY: the symbol has this signature in every libobs that exports it.
        let get: ConnectInfoFn = std::mem::transmute(modern);
        return get(service, what);
    }
    let legacy = match ConnectInfo::from_raw(what) {
        Some(ConnectInfo::ServerUrl) => &GET_URL,
        Some(ConnectInfo::StreamKey) => &GET_KEY,
        Some(ConnectInfo::Username) => &GET_USERNAME,
        Some(ConnectInfo::Password) => &GET_PASSWORD,
        None => return std::ptr::null(),
    };
    match legacy.get() {
        // SAFETY: as above, for libobs 29.0's getters.
        Some(getter) => std::mem::transmute::<*mut c_void, GetterFn>(getter)(service),
        None => std::ptr::null(),
    }
}

/// A service's connection detail as text (empty when it has none).
///
/// # Safety
/// `service` is a live service.
pub(crate) unsafe fn connect_info(service: *const obs_service_t, what: ConnectInfo) -> String {
    text(connect_info_raw(service, what as u32))
}

/// The service's protocol ("RTMP", "RTMPS", ...), or NULL before 29.1.
///
/// # Safety
/// `service` is a live service.
pub(crate) unsafe fn protocol(service: *const obs_service_t) -> *const c_char {
    match GET_PROTOCOL.get() {
        // SAFETY: `const char *obs_service_get_protocol(const obs_service_t *)`.
        Some(get) => std::mem::transmute::<*mut c_void, GetterFn>(get)(service),
        None => std::ptr::null(),
    }
}

/// The service's audio codecs (NULL: no restriction, or before 29.1).
///
/// # Safety
/// `service` is a live service.
pub(crate) unsafe fn supported_audio_codecs(service: *const obs_service_t) -> *mut *const c_char {
    match AUDIO_CODECS.get() {
        // SAFETY: `const char **obs_service_get_supported_audio_codecs(const obs_service_t *)`.
        Some(get) => std::mem::transmute::<*mut c_void, CodecsFn>(get)(service),
        None => std::ptr::null_mut(),
    }
}

/// Whether the service has what it needs to connect (`None` before 29.1, which never asks).
///
/// # Safety
/// `service` is a live service.
pub(crate) unsafe fn can_try_to_connect(service: *const obs_service_t) -> Option<bool> {
    // SAFETY: `bool obs_service_can_try_to_connect(obs_service_t *)`.
    CAN_TRY
        .get()
        .map(|get| std::mem::transmute::<*mut c_void, CanTryFn>(get)(service))
}
