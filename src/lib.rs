//! obs-goaway: lossless RTMP reconnection for OBS Studio and any RTMP publisher.
#![forbid(unused_must_use)]

pub mod media;
pub mod protocol;
pub mod transport;
pub mod session;
