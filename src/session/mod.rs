//! The publishing session: one logical stream over a succession of connections.
//!
//! A producer (the CLI's FLV reader, OBS's encoder callback) feeds tags through a
//! [`packet_channel`]; [`run`] publishes them and, when the server asks (Go Away or
//! Reconnect Request) or the connection dies, moves the stream to a new connection without
//! losing a frame:
//!
//! ```text
//! producer ──channel──▶ session ──▶ active link ──▶ socket
//!                          │  └────▶ standby link (make-before-break: publishing, idle)
//!                          └───────▶ draining links (flushing up to the switch keyframe)
//! ```
//!
//! Every tag gets a sequence number and stays in memory until the server has provably
//! received everything before the next keyframe; so a connection that dies is resumed from
//! the keyframe before its first unacknowledged tag, and a planned switch happens exactly at
//! a keyframe, with the codec headers resent on the new connection first.
//!
//! Timestamps are not rebased by default: the stream's clock runs on across connections, as
//! a viewer's player expects from one continuous stream, and a server that stitches
//! connections can line them up. `rebase_timestamps` restarts each connection at zero for
//! servers that treat every connection as a new stream.
//!
//! # Layout
//!
//! The decisions are pure, like the protocol layer: [`SessionCore`] takes inputs with the
//! time as an argument and is polled for what to do; the tokio driver ([`run`]) is the only
//! part that touches sockets, tasks or the clock.
//!
//! ```text
//!  producer        tokio driver (driver.rs)                     SessionCore (core/)
//!  ────────        ────────────────────────                     ─────────────────────
//!  tags ─────────▶ Input::Tag / InputEnded ───────────────────▶ handle_input(now, ..)
//!  links ────────▶ Connected, ConnectFailed, Server(Go Away..), │ retained.rs  what to keep
//!                  Delivered, Writable, Closed, PathStats ────▶ │ congestion.rs what to drop
//!                                                               │ core/silence.rs silent paths
//!  timer ────────▶ handle_timeout(now) ───────────────────────▶ │ bitrate.rs   what to ask
//!                                                               │ reconnect.rs when to retry
//!  links ◀──────── Open, Send, Finish, Close ◀────────────────── poll_command()
//!  owner ◀──────── SessionEvent ◀─────────────────────────────── poll_event()
//!  timer ◀──────── next wake-up ◀─────────────────────────────── poll_timeout()
//! ```
//!
//! Polling order, after every `handle_input` or `handle_timeout`: every `poll_command`
//! (in order; a `Send` uses the room the `Writable` just handled reported), every
//! `poll_event`, then `poll_outcome` (the session is over when it is `Some`); then wait for
//! a tag while `wants_input`, for room on the link `wants_room` names, for every link's
//! events, and for the `poll_timeout` timer.
//!
//! tests/session_sim drives the same core in a deterministic simulation (virtual clock,
//! simulated links and ingests, random fault schedules); a soak of a million schedules:
//! `SIM_SCHEDULES=1000000 cargo test --release --no-default-features --test session_sim random_fault_schedules`.

mod bitrate;
mod channel;
mod congestion;
mod core;
mod driver;
mod handle;
mod reconnect;
mod retained;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

pub use self::core::{Command, Input, LinkId, SessionCore};
pub use bitrate::{BitrateChange, BitrateStep, DynamicBitrate};
pub use channel::{packet_channel, PacketReceiver, PacketSender, SendError};
pub use congestion::DropThresholds;
pub use driver::run;
pub use handle::{SessionHandle, Status};
pub use reconnect::ReconnectPolicy;
pub use retained::BufferLimits;

use crate::media::Tag;
use crate::transport::{LinkError, LinkOptions, RtmpUrl};

/// Where a session's tags come from: a [`PacketReceiver`] of tags, or an adapter that
/// packages something else (OBS's encoder packets) on the session's side of the channel.
pub trait TagInput: Send + 'static {
    /// The next tag; `None` once the input has ended. Must be cancel-safe: a tag is only
    /// taken from the input when this returns it.
    fn next_tag(&mut self) -> impl Future<Output = Option<Tag>> + Send;
}

impl TagInput for PacketReceiver<Tag> {
    fn next_tag(&mut self) -> impl Future<Output = Option<Tag>> + Send {
        self.recv()
    }
}

/// How a planned migration moves the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationMode {
    /// Publish on the new connection before leaving the old one (no gap at all).
    MakeBeforeBreak,
    /// Leave the old connection at the keyframe, then connect (for servers that refuse a
    /// second publisher of a live key); media in between waits in memory.
    BreakBeforeMake,
}

/// Everything a session needs to know.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where to publish.
    pub url: RtmpUrl,
    /// How each connection is made.
    pub link: LinkOptions,
    /// Make-before-break (default) or break-before-make.
    pub mode: MigrationMode,
    /// After a signal, switch at the next packet anyway if no keyframe came by then.
    pub keyframe_deadline: Duration,
    /// Start every connection's timestamps at zero.
    pub rebase_timestamps: bool,
    /// Reconnection after unplanned drops.
    pub reconnect: ReconnectPolicy,
    /// What may be kept in memory for resuming.
    pub buffer: BufferLimits,
    /// Whether the producer is live (cannot wait): its packets are always taken at once and
    /// buffered; a file source is only read as fast as the connection sends.
    pub live_source: bool,
    /// Drop video when unsent media piles up (a live source on a slow connection), as OBS
    /// does; `None` never drops.
    pub congestion: Option<DropThresholds>,
    /// Lower the encoder's bitrate instead of dropping video (OBS's dynamic bitrate): the
    /// session then drops nothing, measures congestion against `congestion` (or OBS's
    /// defaults) and reports each new bitrate as [`SessionEvent::BitrateChanged`].
    pub dynamic_bitrate: Option<DynamicBitrate>,
    /// Figures and requests shared with the session's owner.
    pub handle: Arc<SessionHandle>,
    /// Asked again for the server's address before each later connection to `url` (a
    /// resume, a move that stays on this server): a service that picks its ingest when asked
    /// (Twitch's "auto" follows OBS's ingest list) is followed, as OBS's own output follows
    /// it at every connection. `None`: `url` always.
    pub resolve: Option<Resolver>,
}

/// Where `SessionConfig::url` points now: called on a blocking thread (it may take seconds),
/// an error keeps the address the session has.
#[derive(Clone)]
pub struct Resolver(pub Arc<dyn Fn() -> Result<RtmpUrl, String> + Send + Sync>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl SessionConfig {
    /// Defaults for publishing to `url`.
    pub fn new(url: RtmpUrl) -> Self {
        Self {
            url,
            link: LinkOptions::default(),
            mode: MigrationMode::MakeBeforeBreak,
            keyframe_deadline: Duration::from_secs(10),
            rebase_timestamps: false,
            reconnect: ReconnectPolicy::default(),
            buffer: BufferLimits::default(),
            live_source: true,
            congestion: None,
            dynamic_bitrate: None,
            handle: Arc::default(),
            resolve: None,
        }
    }
}

/// What made the stream move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Go Away (message type 32).
    GoAway,
    /// Enhanced RTMP Reconnect Request.
    ReconnectRequest,
    /// The connection died without warning.
    ConnectionLost,
    /// The user asked to switch servers.
    UserRequest,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GoAway => "go-away",
            Self::ReconnectRequest => "reconnect-request",
            Self::ConnectionLost => "connection-lost",
            Self::UserRequest => "user-request",
        })
    }
}

/// How a cutover happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoverKind {
    /// Switched at a keyframe to an already publishing connection.
    MakeBeforeBreak,
    /// Closed the old connection at a keyframe, then connected.
    BreakBeforeMake,
    /// Resumed on a new connection from the last keyframe not known to be delivered.
    Resumed,
}

impl fmt::Display for CutoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MakeBeforeBreak => "make-before-break",
            Self::BreakBeforeMake => "break-before-make",
            Self::Resumed => "resumed",
        })
    }
}

/// One move of the stream to a new connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Cutover {
    /// Why it moved.
    pub cause: Cause,
    /// How.
    pub kind: CutoverKind,
    /// Timestamp (ms) of the first tag on the new connection.
    pub keyframe_timestamp: u32,
    /// From the signal (or drop) to the new connection carrying media.
    pub took: Duration,
    /// Frames sent again because the old connection may not have delivered them.
    pub duplicates: u64,
}

/// Something worth telling the user while the session runs.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A connection is publishing (the first, or after a move).
    Publishing {
        /// Where (key redacted).
        url: String,
        /// How long connecting took.
        connect_time: Duration,
    },
    /// The server asked the stream to move.
    MoveRequested {
        /// Which signal.
        cause: Cause,
        /// Where to (key redacted).
        target: String,
    },
    /// The stream moved.
    Moved(Cutover),
    /// The connection failed.
    ConnectionLost {
        /// Why.
        error: String,
    },
    /// A reconnection attempt is scheduled.
    Reconnecting {
        /// 1-based attempt number.
        attempt: u32,
        /// Wait before it.
        delay: Duration,
    },
    /// The buffer limit forced frames out that were never sent.
    FramesDropped {
        /// How many.
        count: u64,
    },
    /// Dynamic bitrate: the encoder should produce this bitrate from now on.
    BitrateChanged(BitrateChange),
}

/// What happened over the session's life.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Tags taken from the producer.
    pub tags_in: u64,
    /// Audio and video frames taken from the producer.
    pub frames_in: u64,
    /// Payload bytes taken from the producer.
    pub bytes_in: u64,
    /// Every move to a new connection.
    pub cutovers: Vec<Cutover>,
    /// Frames sent more than once (resumes after drops only).
    pub duplicates: u64,
    /// Frames never delivered (buffer limit, or an old connection failing while draining).
    pub lost: u64,
    /// Connections that reached publishing.
    pub connections: u32,
    /// Most payload bytes held for resuming at once.
    pub peak_buffer_bytes: usize,
}

/// Why a session ended without publishing everything.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The first connection failed.
    #[error("{0}")]
    Connect(LinkError),
    /// Reconnecting failed too many times.
    #[error("gave up after {attempts} reconnection attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: LinkError,
    },
    /// A failure that retrying cannot fix (stream key refused, certificate rejected).
    #[error("{0}")]
    Fatal(LinkError),
}
