//! The I/O layer: URLs, TCP/TLS streams and the tokio drivers that run the sans-IO
//! protocol state machines over them. This is the only layer that reads the clock or
//! touches sockets.

pub(crate) mod io;
pub mod link;
mod route;
pub mod stream;
pub mod tcp_info;
pub mod tls;
pub mod url;

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

pub use link::{establish, DeliverySample, Established, Link, LinkEvent, LinkOptions, QueueLimits};
pub use stream::{IpFamily, LocalEnd};
pub use tcp_info::{DeliveryStats, PathState, PathWatch, SilenceRule};
pub use url::{RtmpUrl, Scheme, UrlError};

use crate::protocol::ProtocolError;

/// Why a connection failed. Messages name the host or address, never the stream key.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// TCP connect failed (refused, unreachable).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// Connecting and publishing took too long.
    #[error("timed out after {}s connecting and publishing", .0.as_secs_f32())]
    Timeout(Duration),
    /// The server broke the protocol or refused the stream.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server closed the connection.
    #[error("server closed the connection")]
    ClosedByServer,
    /// The server closed the connection before publishing started.
    #[error("server closed the connection during {0}")]
    ClosedDuring(&'static str),
    /// The peer stopped taking data.
    #[error("connection stalled: {0}")]
    Stalled(&'static str),
    /// The connection's network path disappeared (its address or route).
    #[error("connection lost: {0}")]
    PathGone(&'static str),
    /// A socket error.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl LinkError {
    /// Whether the server refused the publish because the key is live on another
    /// connection (make-before-break then falls back to break-before-make).
    pub fn is_key_in_use(&self) -> bool {
        matches!(self, Self::Protocol(error) if error.is_key_in_use())
    }

    /// Whether retrying later can help (a refused key, bad certificate or wrong password
    /// will not change).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Protocol(ProtocolError::Rejected { .. }) => self.is_key_in_use(),
            Self::Protocol(ProtocolError::Auth(_)) | Self::Tls(_) => false,
            _ => true,
        }
    }
}
