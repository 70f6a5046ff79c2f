//! obs-goaway: lossless RTMP reconnection for OBS Studio and any RTMP publisher.
#![forbid(unused_must_use)]

pub mod ingest;
pub mod media;
pub mod protocol;
pub mod session;
pub mod source;
pub mod transport;
