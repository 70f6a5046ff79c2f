//! Raw bindings of libobs and obs-frontend-api, generated from the installed headers.
//!
//! Replaces crates.io's `obs-sys` (through `[patch.crates-io]`), whose build falls back to
//! libobs 25 bindings without a word when it cannot find the headers. The assertions below
//! make a build against anything but libobs 29 or newer impossible.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    improper_ctypes,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

const _: () = assert!(
    LIBOBS_API_MAJOR_VER >= 29,
    "obs-sys: bindings older than libobs 29"
);
// libobs 25's bindings have a 152-byte obs_service_info; 29.0 has 184 (64-bit).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(
    std::mem::size_of::<obs_service_info>() >= 184,
    "obs-sys: obs_service_info is smaller than libobs 29's"
);

/// The field libobs 29.1 appended to `obs_output_info` (unchanged up to 32.x).
///
/// Bindings from 29.0 headers lack it, bindings from 29.1 or newer headers have it: a plugin
/// that must register with either libobs writes it at [`OBS_OUTPUT_INFO_29_0_SIZE`], the
/// end of 29.0's struct, whichever headers built it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct obs_output_info_29_1 {
    /// The protocols the output speaks, separated by semicolons ("RTMP;RTMPS").
    pub protocols: *const ::std::os::raw::c_char,
}

/// The callbacks libobs 29.1 appended to `obs_service_info` (unchanged up to 32.x), written
/// at [`OBS_SERVICE_INFO_29_0_SIZE`] like [`obs_output_info_29_1`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct obs_service_info_29_1 {
    pub get_protocol: ::std::option::Option<
        unsafe extern "C" fn(data: *mut ::std::os::raw::c_void) -> *const ::std::os::raw::c_char,
    >,
    pub get_supported_audio_codecs: ::std::option::Option<
        unsafe extern "C" fn(
            data: *mut ::std::os::raw::c_void,
        ) -> *mut *const ::std::os::raw::c_char,
    >,
    pub get_connect_info: ::std::option::Option<
        unsafe extern "C" fn(
            data: *mut ::std::os::raw::c_void,
            type_: u32,
        ) -> *const ::std::os::raw::c_char,
    >,
    pub can_try_to_connect:
        ::std::option::Option<unsafe extern "C" fn(data: *mut ::std::os::raw::c_void) -> bool>,
}

/// `sizeof(struct obs_output_info)` in libobs 29.0: up to its last field, `raw_audio2`.
pub const OBS_OUTPUT_INFO_29_0_SIZE: usize = std::mem::offset_of!(obs_output_info, raw_audio2)
    + std::mem::size_of::<::std::option::Option<unsafe extern "C" fn()>>();
/// `sizeof(struct obs_service_info)` in libobs 29.0: up to its last field,
/// `get_supported_video_codecs`.
pub const OBS_SERVICE_INFO_29_0_SIZE: usize =
    std::mem::offset_of!(obs_service_info, get_supported_video_codecs)
        + std::mem::size_of::<::std::option::Option<unsafe extern "C" fn()>>();

// From 29.0 headers the bindings end where 29.0's structs end.
#[cfg(not(libobs_headers_29_1))]
const _: () = assert!(
    std::mem::size_of::<obs_output_info>() == OBS_OUTPUT_INFO_29_0_SIZE
        && std::mem::size_of::<obs_service_info>() == OBS_SERVICE_INFO_29_0_SIZE,
    "obs-sys: 29.0 headers whose info structs have more than 29.0's fields"
);

// From 29.1 or newer headers, the appended fields sit where the descriptions above put them,
// with the same types (the function below does not compile otherwise).
#[cfg(libobs_headers_29_1)]
const _: () = {
    use std::mem::offset_of;
    assert!(
        offset_of!(obs_output_info, protocols)
            == OBS_OUTPUT_INFO_29_0_SIZE + offset_of!(obs_output_info_29_1, protocols),
        "obs-sys: obs_output_info::protocols is not right after 29.0's fields"
    );
    assert!(
        offset_of!(obs_service_info, get_protocol)
            == OBS_SERVICE_INFO_29_0_SIZE + offset_of!(obs_service_info_29_1, get_protocol)
            && offset_of!(obs_service_info, get_supported_audio_codecs)
                == OBS_SERVICE_INFO_29_0_SIZE
                    + offset_of!(obs_service_info_29_1, get_supported_audio_codecs)
            && offset_of!(obs_service_info, get_connect_info)
                == OBS_SERVICE_INFO_29_0_SIZE
                    + offset_of!(obs_service_info_29_1, get_connect_info)
            && offset_of!(obs_service_info, can_try_to_connect)
                == OBS_SERVICE_INFO_29_0_SIZE
                    + offset_of!(obs_service_info_29_1, can_try_to_connect),
        "obs-sys: obs_service_info's 29.1 callbacks are not right after 29.0's fields"
    );
};

#[cfg(libobs_headers_29_1)]
fn _appended_fields_have_the_headers_types(
    output: &obs_output_info,
    service: &obs_service_info,
) -> (obs_output_info_29_1, obs_service_info_29_1) {
    (
        obs_output_info_29_1 {
            protocols: output.protocols,
        },
        obs_service_info_29_1 {
            get_protocol: service.get_protocol,
            get_supported_audio_codecs: service.get_supported_audio_codecs,
            get_connect_info: service.get_connect_info,
            can_try_to_connect: service.can_try_to_connect,
        },
    )
}
