//! obs-goaway: lossless RTMP reconnection for OBS Studio and any RTMP publisher.
//!
//! An ingest server about to restart can ask its publishers to move: RTMP **Go Away**
//! (message type 32, announced by `supportsGoAway: true` in `connect`) or Enhanced RTMP v2's
//! **Reconnect Request** (`onStatus NetConnection.Connect.ReconnectRequest`, announced by the
//! `capsEx` Reconnect bit). This crate publishes RTMP/RTMPS, speaks both, and moves a stream to
//! a new connection at the next keyframe without losing or duplicating a frame.
//!
//! # Design
//!
//! Data flows one way, through layers that only know the layers below them:
//!
//! ```text
//! producer (FLV reader, OBS encoder callback)
//!   │  session::packet_channel: lock-free, never blocks the producer
//!   ▼
//! session    one logical stream over successive connections; switch at keyframes,
//!   │        resume after drops from what the server has acknowledged
//!   ▼
//! transport  tokio drivers: TCP/TLS, vectored writes, stall detection (the only clock reader)
//!   ▼
//! protocol   sans-IO state machines: handshake, chunk stream, AMF0, publisher, ingest
//! media      the Tag every layer passes; FLV; H.264/HEVC/AV1/AAC packaging
//! ```
//!
//! [`ingest`] is the reference server: the test peer of the publisher and an example of the
//! server side of a lossless move.
//!
//! # Publishing
//!
//! ```no_run
//! use obs_goaway::media::Tag;
//! use obs_goaway::session::{self, SessionConfig};
//! use obs_goaway::transport::RtmpUrl;
//!
//! # async fn example(tags: Vec<Tag>) -> Result<(), Box<dyn std::error::Error>> {
//! let url = RtmpUrl::parse("rtmp://ingest.example.com/live/STREAM-KEY")?;
//! let (sender, receiver) = session::packet_channel(256);
//! let session = tokio::spawn(session::run(SessionConfig::new(url), receiver, None));
//! std::thread::spawn(move || {
//!     for tag in tags {
//!         // An encoder thread would use `try_send`, which never blocks.
//!         if sender.send_blocking(tag).is_err() {
//!             break;
//!         }
//!     }
//! });
//! let report = session.await??;
//! println!("{} frames, {} moves, {} lost", report.frames_in, report.cutovers.len(), report.lost);
//! # Ok(())
//! # }
//! ```
#![forbid(unused_must_use)]

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod ingest;
pub mod live;
pub mod media;
#[cfg(feature = "obs")]
#[allow(unsafe_code)]
pub mod obs;
pub mod protocol;
pub mod session;
pub mod source;
pub mod transport;
