//! The RTMP protocol, sans-IO: pure state machines over byte buffers, with no sockets and no
//! clock, so every behaviour is deterministic and testable without a network.
//!
//! Layers, bottom up: [`handshake`], [`chunk`] (the chunk stream codec), [`amf0`] and
//! [`message`] (what chunks carry), then the two endpoints, [`publisher`] and [`server`],
//! and the authentication both can run in `connect`, [`auth`].

pub mod amf0;
pub mod auth;
pub mod chunk;
pub mod handshake;
pub mod message;
pub mod publisher;
pub mod redact;
pub mod server;
mod wire;

use std::io::IoSlice;

use thiserror::Error;

pub use publisher::{Event, PublishConfig, Publisher};
pub use server::{ServerEvent, ServerSession};

/// Why an RTMP connection cannot go on. Sticky: a state machine that returned one returns
/// it again on every later input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The handshake failed: the peer is not an RTMP server, or wants another version.
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    /// The chunk stream was malformed.
    #[error("malformed chunk stream: {0}")]
    Chunk(#[from] chunk::ChunkError),
    /// A message body was malformed.
    #[error("malformed message: {0}")]
    Message(#[from] message::MessageError),
    /// The server answered `connect`, `createStream` or `publish` with an error.
    #[error("server refused {stage}: {code} ({description})")]
    Rejected {
        /// Which step was refused.
        stage: &'static str,
        /// The status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// The server's explanation.
        description: String,
    },
    /// Authentication cannot succeed (wrong password, no credentials, unknown scheme).
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// Media was sent before `NetStream.Publish.Start` or after the stream was finished.
    #[error("not publishing")]
    NotPublishing,
}

impl ProtocolError {
    /// Whether the server refused the publish because the key is still live elsewhere,
    /// the case where make-before-break must fall back to break-before-make.
    pub fn is_key_in_use(&self) -> bool {
        matches!(self, Self::Rejected { code, description, .. }
            if code == "NetStream.Publish.BadName"
                || description.to_ascii_lowercase().contains("already publishing"))
    }
}

/// The error an endpoint failed with, returned again by every later input.
#[derive(Debug, Default)]
struct Sticky(Option<ProtocolError>);

impl Sticky {
    /// Fails if an earlier input failed.
    fn check(&self) -> Result<(), ProtocolError> {
        self.0.clone().map_or(Ok(()), Err)
    }

    /// Remembers the error of `result`, if any, and passes it on.
    fn record(&mut self, result: Result<(), ProtocolError>) -> Result<(), ProtocolError> {
        if let Err(error) = &result {
            self.0 = Some(error.clone());
        }
        result
    }
}

/// The output side both endpoints share, so that one driver loop writes either.
pub trait Transmit {
    /// Fills `slices` with the next bytes to write, in order; returns how many were filled.
    #[must_use]
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize;
    /// Records that the first `n` bytes offered were written.
    fn advance(&mut self, n: usize);
    /// Bytes waiting to be written.
    fn queued(&self) -> usize;
}
