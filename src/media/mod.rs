//! Media: the [`Tag`] every layer passes around, FLV files, and the packagers that turn
//! encoder output (Annex-B H.264/HEVC, AV1 OBUs, raw AAC) into RTMP tag bodies.

pub mod aac;
pub mod annexb;
pub mod av1;
pub mod avc;
mod bits;
pub mod compare;
pub mod flv;
pub mod hevc;
pub mod packager;
pub mod priority;
mod tag;

use thiserror::Error;

pub use packager::VideoCodec;
pub use tag::{Slot, Tag, TagKind, ADDITIONAL_MEDIA};

/// Why encoder output could not be packaged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaError {
    /// A parameter set or header the codec needs is absent.
    #[error("{0} missing from the encoder's extra data")]
    Missing(&'static str),
    /// A structure ended early.
    #[error("{0} truncated")]
    Truncated(&'static str),
    /// A structure holds impossible values.
    #[error("invalid bitstream: {0}")]
    Invalid(&'static str),
}
