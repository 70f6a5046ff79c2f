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
