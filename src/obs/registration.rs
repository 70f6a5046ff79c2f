//! Registering an output or service with the struct size the running libobs knows, whatever
//! libobs headers the plugin was built with.
//!
//! libobs 29.1 appended fields to `obs_output_info` and `obs_service_info`; a libobs reads
//! only as many bytes as the plugin says and refuses a registration that lacks a field it
//! requires (29.1 and later require `protocols` and `get_protocol`) or that is larger than
//! its own struct (29.0). So the plugin registers 29.0's size with 29.0 and 29.0's size plus
//! the appended fields with 29.1 and later, and writes those fields at 29.0's end: inside the
//! generated struct when the bindings come from 29.1 or newer headers (which declare them),
//! after it when they come from 29.0's (which do not).

use std::mem::{size_of, MaybeUninit};
use std::ptr;

use obs_sys::{
    obs_output_info, obs_output_info_29_1, obs_service_info, obs_service_info_29_1,
    OBS_OUTPUT_INFO_29_0_SIZE, OBS_SERVICE_INFO_29_0_SIZE,
};

use super::version::Running;

/// An info struct of libobs that grew in 29.1.
pub(crate) trait Grown {
    /// The fields 29.1 appended, in order.
    type Appended;
    /// `sizeof` the struct in 29.0: where the appended fields begin.
    const SIZE_29_0: usize;
}

impl Grown for obs_output_info {
    type Appended = obs_output_info_29_1;
    const SIZE_29_0: usize = OBS_OUTPUT_INFO_29_0_SIZE;
}

impl Grown for obs_service_info {
    type Appended = obs_service_info_29_1;
    const SIZE_29_0: usize = OBS_SERVICE_INFO_29_0_SIZE;
}

/// The bytes handed to `obs_register_*_s`: the generated struct with the appended fields
/// written at 29.0's end, and room for them past the struct if it ends there.
#[repr(C)]
pub(crate) struct Registration<B: Grown> {
    info: B,
    room: MaybeUninit<B::Appended>,
}

impl<B: Grown> Registration<B> {
    /// `info` as the bindings know it, then `appended` at 29.0's end.
    pub(crate) fn new(info: B, appended: B::Appended) -> Box<Self> {
        const {
            assert!(
                B::SIZE_29_0 <= size_of::<B>(),
                "the bindings' struct is smaller than libobs 29.0's"
            );
        }
        let mut registration = Box::new(Self {
            info,
            room: MaybeUninit::zeroed(),
        });
        let base = ptr::from_mut::<Self>(&mut registration).cast::<u8>();
        // SAFETY: SIZE_29_0 <= size_of::<B>() (checked above) and `room` follows `info`, so
        // the appended fields' bytes lie within this allocation; unaligned writes need no
        // alignment.
        unsafe {
            ptr::write_unaligned(base.add(B::SIZE_29_0).cast::<B::Appended>(), appended);
        }
        registration
    }

    /// What `obs_register_*_s` takes as the info.
    pub(crate) fn info(&self) -> *const B {
        &self.info
    }

    /// The size to register with: 29.0's struct for 29.0, with the appended fields for
    /// 29.1 and later (the same up to 32.x; a newer libobs takes a smaller struct).
    pub(crate) fn size(&self, running: Running) -> usize {
        if running.has_protocols() {
            B::SIZE_29_0 + size_of::<B::Appended>()
        } else {
            B::SIZE_29_0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_char;
    use std::mem::offset_of;
    use std::ptr;

    use super::*;

    const fn marker(value: usize) -> *const c_char {
        ptr::without_provenance(value)
    }

    /// The appended field of the fake structs below.
    #[repr(C)]
    struct Tail {
        protocols: *const c_char,
    }

    /// Shaped like bindings from 29.0 headers: no appended field.
    #[repr(C)]
    struct Shape290 {
        id: *const c_char,
        flags: u32,
        last: *const c_char,
    }

    impl Grown for Shape290 {
        type Appended = Tail;
        const SIZE_29_0: usize = size_of::<Self>();
    }

    /// Shaped like bindings from 29.1 or newer headers: the appended field declared (NULL
    /// when the plugin leaves it to `Default`).
    #[repr(C)]
    struct Shape291 {
        id: *const c_char,
        flags: u32,
        last: *const c_char,
        protocols: *const c_char,
    }

    impl Grown for Shape291 {
        type Appended = Tail;
        const SIZE_29_0: usize = offset_of!(Self, protocols);
    }

    /// What libobs 29.1 reads: the struct it was built with, `size` bytes copied.
    fn as_libobs_291_reads<B: Grown>(registration: &Registration<B>) -> Shape291 {
        let size = registration.size(Running::from_version(29, 1, 0));
        assert_eq!(size, size_of::<Shape291>());
        // SAFETY: `size` bytes of the registration are initialized (checked by the
        // tests' expectations); Shape291 is plain data.
        unsafe { ptr::read_unaligned(registration.info().cast::<Shape291>()) }
    }

    #[test]
    fn from_29_0_bindings_the_appended_field_follows_the_struct() {
        let registration = Registration::new(
            Shape290 {
                id: marker(1),
                flags: 2,
                last: marker(3),
            },
            Tail {
                protocols: marker(4),
            },
        );
        let read = as_libobs_291_reads(&registration);
        assert_eq!(
            (read.id, read.flags, read.last, read.protocols),
            (marker(1), 2, marker(3), marker(4))
        );
        assert_eq!(
            registration.size(Running::from_version(29, 0, 2)),
            size_of::<Shape290>()
        );
    }

    #[test]
    fn from_29_1_bindings_the_appended_field_is_the_declared_one() {
        let registration = Registration::new(
            Shape291 {
                id: marker(1),
                flags: 2,
                last: marker(3),
                protocols: ptr::null(),
            },
            Tail {
                protocols: marker(4),
            },
        );
        let read = as_libobs_291_reads(&registration);
        assert_eq!(
            (read.id, read.flags, read.last, read.protocols),
            (marker(1), 2, marker(3), marker(4))
        );
        assert_eq!(
            registration.size(Running::from_version(29, 0, 2)),
            offset_of!(Shape291, protocols),
            "29.0 gets its own struct's size"
        );
        for (major, minor) in [(29, 1), (30, 2), (31, 0), (32, 2)] {
            assert_eq!(
                registration.size(Running::from_version(major, minor, 0)),
                size_of::<Shape291>(),
                "{major}.{minor} gets the struct with its protocols"
            );
        }
    }

    /// The sizes libobs itself has on x86_64, whatever headers built these bindings:
    /// `sizeof(struct obs_output_info)` is 184 in 29.0 and 192 from 29.1 to 32.x,
    /// `sizeof(struct obs_service_info)` 184 and 216.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_real_structs_register_with_libobs_sizes() {
        let output = Registration::new(
            obs_output_info::default(),
            obs_output_info_29_1 {
                protocols: marker(7),
            },
        );
        let service = Registration::new(
            obs_service_info::default(),
            obs_service_info_29_1 {
                get_protocol: None,
                get_supported_audio_codecs: None,
                get_connect_info: None,
                can_try_to_connect: None,
            },
        );
        let old = Running::from_version(29, 0, 2);
        let new = Running::from_version(30, 2, 3);
        assert_eq!((output.size(old), output.size(new)), (184, 192));
        assert_eq!((service.size(old), service.size(new)), (184, 216));
        // SAFETY: 192 bytes of the output registration are initialized.
        let protocols: *const c_char =
            unsafe { ptr::read_unaligned(output.info().cast::<u8>().add(184).cast()) };
        assert_eq!(protocols, marker(7));
    }
}
