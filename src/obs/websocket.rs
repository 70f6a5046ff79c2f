//! obs-websocket vendor requests (vendor `obs-goaway`): `GetStatus`, `Enable`, `Disable`,
//! `SwitchServer`, for scripts and remote controls (`CallVendorRequest`).
//!
//! obs-websocket's C API (`obs-websocket-api.h`) is a set of inline functions over libobs
//! proc handlers; they are done here over the same calls, so the plugin neither needs the
//! header nor links obs-websocket, and runs without it. Registration has to wait for
//! `obs_module_post_load`, when obs-websocket has registered its own procedures.
//!
//! Every response carries `ok` (and `error`, English, when false): obs-websocket reports a
//! vendor request as successful whatever the plugin answers.

use std::ffi::{c_char, c_void};
use std::fmt;
use std::ptr;

use obs_sys::{
    bfree, calldata_get_data, calldata_set_data, calldata_t, obs_data_array_create,
    obs_data_array_push_back, obs_data_array_release, obs_data_set_array, obs_data_t,
    obs_get_proc_handler, proc_handler_call, proc_handler_t,
};
use obs_wrapper::data::DataObj;
use obs_wrapper::wrapper::PtrWrapper;

use super::ffi::{c_string, cstr, guard};
use super::locale::{text, tr, with_detail};
use super::output::running_session;
use super::profile;
use super::settings::{Sink, Source};
use crate::transport::RtmpUrl;

/// The vendor name clients call (`vendorName` of CallVendorRequest).
const VENDOR: &str = "obs-goaway";

/// `struct obs_websocket_request_callback`: obs-websocket copies it at registration.
#[repr(C)]
struct RequestCallback {
    callback: unsafe extern "C" fn(*mut obs_data_t, *mut obs_data_t, *mut c_void),
    priv_data: *mut c_void,
}

/// libobs call data, freed on drop (`calldata_free`).
struct CallData(calldata_t);

impl CallData {
    fn new() -> Self {
        Self(calldata_t::default())
    }

    fn set_ptr(&mut self, name: *const c_char, value: *mut c_void) {
        // SAFETY: libobs copies the pointer value (calldata_set_ptr).
        unsafe {
            calldata_set_data(
                &mut self.0,
                name,
                ptr::addr_of!(value).cast(),
                size_of::<*mut c_void>() as _,
            );
        }
    }

    fn set_string(&mut self, name: *const c_char, value: &str) {
        let value = c_string(value);
        let bytes = value.as_bytes_with_nul();
        // SAFETY: libobs copies the string with its NUL (calldata_set_string).
        unsafe { calldata_set_data(&mut self.0, name, bytes.as_ptr().cast(), bytes.len() as _) };
    }

    fn ptr(&self, name: *const c_char) -> *mut c_void {
        let mut value: *mut c_void = ptr::null_mut();
        // SAFETY: reads a pointer-sized value if present (calldata_ptr).
        unsafe {
            calldata_get_data(
                &self.0,
                name,
                ptr::addr_of_mut!(value).cast(),
                size_of::<*mut c_void>() as _,
            );
        }
        value
    }

    fn boolean(&self, name: *const c_char) -> bool {
        let mut value = false;
        // SAFETY: as above, for a bool (calldata_bool).
        unsafe {
            calldata_get_data(
                &self.0,
                name,
                ptr::addr_of_mut!(value).cast(),
                size_of::<bool>() as _,
            );
        }
        value
    }

    /// Calls procedure `name` of `handler` with this data.
    fn call(&mut self, handler: *mut proc_handler_t, name: *const c_char) -> bool {
        // SAFETY: the handler is live (obs-websocket's lives until it unloads, after us).
        unsafe { proc_handler_call(handler, name, &mut self.0) }
    }
}

impl Drop for CallData {
    fn drop(&mut self) {
        if !self.0.fixed {
            // SAFETY: the stack was allocated by libobs (bmalloc) or is NULL.
            unsafe { bfree(self.0.stack.cast()) };
        }
    }
}

/// Registers the vendor and its requests; without obs-websocket there is nothing to do.
pub(crate) fn register() {
    // SAFETY: the global proc handler exists once libobs is up.
    let global = unsafe { obs_get_proc_handler() };
    let mut data = CallData::new();
    if global.is_null() || !data.call(global, cstr!("obs_websocket_api_get_ph")) {
        log::info!("obs-websocket is not loaded: no vendor requests");
        return;
    }
    let handler = data.ptr(cstr!("ph")).cast::<proc_handler_t>();
    if handler.is_null() {
        return;
    }
    let mut data = CallData::new();
    data.set_string(cstr!("name"), VENDOR);
    data.call(handler, cstr!("vendor_register"));
    let vendor = data.ptr(cstr!("vendor"));
    if vendor.is_null() {
        log::warn!("obs-websocket refused vendor \"{VENDOR}\"");
        return;
    }
    let requests: [(
        &str,
        unsafe extern "C" fn(*mut obs_data_t, *mut obs_data_t, *mut c_void),
    ); 4] = [
        ("GetStatus", get_status),
        ("Enable", enable),
        ("Disable", disable),
        ("SwitchServer", switch),
    ];
    for (name, callback) in requests {
        let mut callback = RequestCallback {
            callback,
            priv_data: ptr::null_mut(),
        };
        let mut data = CallData::new();
        data.set_string(cstr!("type"), name);
        data.set_ptr(cstr!("callback"), ptr::addr_of_mut!(callback).cast());
        data.set_ptr(cstr!("vendor"), vendor);
        data.call(handler, cstr!("vendor_request_register"));
        if !data.boolean(cstr!("success")) {
            log::warn!("obs-websocket refused request {VENDOR}/{name}");
        }
    }
    log::info!("obs-websocket vendor requests registered: {VENDOR} GetStatus, Enable, Disable, SwitchServer");
}

/// Borrows the request or response data obs-websocket passes.
///
/// # Safety
/// `data` is NULL or live for the call.
unsafe fn borrowed(data: *mut obs_data_t) -> Option<DataObj<'static>> {
    if data.is_null() {
        return None;
    }
    obs_sys::obs_data_addref(data);
    Some(DataObj::from_raw(data))
}

/// Answers a request: `ok`, and `error` when it failed.
fn answer(response: &mut DataObj<'static>, result: Result<(), String>) {
    response.set_bool("ok", result.is_ok());
    if let Err(error) = result {
        response.set_string("error", &error);
    }
}

/// `GetStatus` -> `{ok, enabled, reloadRequired, streaming, server, moves: [{cause, kind,
/// keyframeTimestamp, tookMs, duplicates}], lost, duplicates, bufferBytes}`.
unsafe extern "C" fn get_status(
    _request: *mut obs_data_t,
    response: *mut obs_data_t,
    _: *mut c_void,
) {
    guard("websocket GetStatus", (), || {
        let Some(mut response) = borrowed(response) else {
            return;
        };
        let enabled = profile::is_enabled();
        response.set_bool("enabled", enabled);
        response.set_bool("reloadRequired", enabled && profile::multitrack_set_up());
        let status = running_session().map(|handle| handle.status());
        response.set_bool("streaming", status.is_some());
        let status = status.unwrap_or_default();
        response.set_string("server", &status.server);
        let moves = obs_data_array_create();
        for cutover in &status.moves {
            let mut item = DataObj::new();
            item.set_string("cause", &cutover.cause.to_string());
            item.set_string("kind", &cutover.kind.to_string());
            item.set_int("keyframeTimestamp", i64::from(cutover.keyframe_timestamp));
            item.set_int("tookMs", cutover.took.as_millis() as i64);
            item.set_int("duplicates", cutover.duplicates as i64);
            obs_data_array_push_back(moves, item.as_ptr_mut());
        }
        obs_data_set_array(response.as_ptr_mut(), cstr!("moves"), moves);
        obs_data_array_release(moves);
        response.set_int("lost", status.lost as i64);
        response.set_int("duplicates", status.duplicates as i64);
        response.set_int("bufferBytes", status.buffer_bytes as i64);
        answer(&mut response, Ok(()));
    })
}

/// `Enable {options…}` -> `{ok, server, multitrackDisabled, reloadRequired}`; any option key
/// of the service (`goaway_strategy`, …) in the request is used, the rest are defaults.
/// `reloadRequired`: OBS still has Enhanced Broadcasting set up, so streams bypass us until
/// OBS restarts or the profile is switched away and back.
unsafe extern "C" fn enable(request: *mut obs_data_t, response: *mut obs_data_t, _: *mut c_void) {
    guard("websocket Enable", (), || {
        let Some(mut response) = borrowed(response) else {
            return;
        };
        let options = borrowed(request).unwrap_or_default();
        let result = profile::enable(&options, None).map(|enabled| {
            let server = RtmpUrl::with_key(&enabled.destination.server, &enabled.destination.key)
                .map_or_else(
                    |_| enabled.destination.server.clone(),
                    |url| url.to_string(),
                );
            response.set_string("server", &server);
            response.set_bool("multitrackDisabled", enabled.multitrack_cleared);
            response.set_bool("reloadRequired", enabled.reload_required);
        });
        answer(&mut response, result.map_err(|e| e.to_string()));
    })
}

/// `Disable` -> `{ok, restoredType, multitrackRestored}`.
unsafe extern "C" fn disable(_request: *mut obs_data_t, response: *mut obs_data_t, _: *mut c_void) {
    guard("websocket Disable", (), || {
        let Some(mut response) = borrowed(response) else {
            return;
        };
        let result = profile::disable().map(|disabled| {
            response.set_string("restoredType", &disabled.restored_type);
            response.set_bool("multitrackRestored", disabled.multitrack_restored);
        });
        answer(&mut response, result.map_err(|e| e.to_string()));
    })
}

/// `SwitchServer {url}` -> `{ok}`: the move starts; `GetStatus` shows it once done.
unsafe extern "C" fn switch(request: *mut obs_data_t, response: *mut obs_data_t, _: *mut c_void) {
    guard("websocket SwitchServer", (), || {
        let Some(mut response) = borrowed(response) else {
            return;
        };
        let url = borrowed(request)
            .and_then(|r| r.string("url"))
            .unwrap_or_default();
        answer(
            &mut response,
            switch_server(&url).map(drop).map_err(|e| e.to_string()),
        );
    })
}

/// Why a switch cannot start.
#[derive(Debug)]
pub(crate) enum SwitchError {
    NotStreaming,
    BadUrl(String),
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStreaming => f.write_str("not streaming through obs-goaway"),
            Self::BadUrl(url) => write!(f, "not an rtmp:// or rtmps:// server URL: \"{url}\""),
        }
    }
}

impl SwitchError {
    pub(crate) fn localized(&self) -> String {
        match self {
            Self::NotStreaming => text(tr!("Error.NotStreaming")),
            Self::BadUrl(url) => with_detail(tr!("Error.BadUrl"), url),
        }
    }
}

/// Moves the running stream to `server` (`rtmp[s]://host[:port]/app`, the stream key
/// stays) at the next keyframe, make-before-break. Returns the server.
pub(crate) fn switch_server(server: &str) -> Result<String, SwitchError> {
    let server = server.trim();
    if RtmpUrl::with_key(server, "key").is_err() {
        return Err(SwitchError::BadUrl(server.to_string()));
    }
    let handle = running_session().ok_or(SwitchError::NotStreaming)?;
    handle.request_move(server);
    log::info!("switching servers at the user's request");
    Ok(server.to_string())
}
