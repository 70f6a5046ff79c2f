//! Media: the [`Tag`] every layer passes around, FLV files, and the packagers that turn
//! encoder output (Annex-B H.264/HEVC, AV1 OBUs, raw AAC) into RTMP tag bodies.

pub mod flv;
mod tag;

pub use tag::{Tag, TagKind};
