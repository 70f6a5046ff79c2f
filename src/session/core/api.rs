//! What goes into a [`SessionCore`](super::SessionCore) and what comes out.

use std::time::Duration;

use crate::media::Tag;
use crate::protocol::Event;
use crate::transport::{DeliveryStats, LinkError, RtmpUrl};

/// Names one connection over its whole life, from [`Command::Open`] to its close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Something that happened, for [`SessionCore::handle_input`](super::SessionCore::handle_input).
///
/// Non-exhaustive: transport signals (delivery statistics, for instance) join as variants
/// of their own, each handled where the policy it feeds lives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// The producer's next tag.
    Tag(Tag),
    /// The producer is done: finish the stream once everything is handed over.
    InputEnded,
    /// A link opened by [`Command::Open`] is publishing.
    Connected {
        /// Which.
        link: LinkId,
        /// From dialling to `NetStream.Publish.Start`.
        connect_time: Duration,
    },
    /// A link opened by [`Command::Open`] failed before publishing (refused connect,
    /// refused publish, timeout).
    ConnectFailed {
        /// Which.
        link: LinkId,
        /// Why.
        error: LinkError,
    },
    /// The link's server said something (Go Away, Reconnect Request, a status).
    Server {
        /// Which link.
        link: LinkId,
        /// What.
        event: Event,
    },
    /// The server has provably received every tag numbered below `upto` that was sent on
    /// this link (acknowledged, or read before our FIN). Only ever grows.
    Delivered {
        /// Which link.
        link: LinkId,
        /// One past the highest sequence number delivered.
        upto: u64,
    },
    /// The link has room for one tag (answered by at most one [`Command::Send`]); only
    /// after [`SessionCore::wants_room`](super::SessionCore::wants_room) named it.
    Writable {
        /// Which link.
        link: LinkId,
    },
    /// The link ended: `Ok` after a [`Command::Finish`] completed, `Err` when it failed.
    Closed {
        /// Which link.
        link: LinkId,
        /// How.
        result: Result<(), LinkError>,
    },
    /// The user asked to move to `server` (resolved like a Reconnect Request's tcUrl).
    MoveRequest {
        /// An `rtmp://host/app` URL.
        server: String,
    },
    /// A reading of the link's TCP state ([`LinkEvent::Path`](crate::transport::LinkEvent::Path)),
    /// for telling a silent path from a slow one.
    PathStats {
        /// Which link.
        link: LinkId,
        /// What the kernel said.
        stats: DeliveryStats,
    },
}

/// What the driver must do, from [`SessionCore::poll_command`](super::SessionCore::poll_command).
#[derive(Debug)]
#[must_use = "the session's decision must be carried out"]
pub enum Command {
    /// Connect to `url` and publish; answer with [`Input::Connected`] or
    /// [`Input::ConnectFailed`].
    Open {
        /// The id the answer must carry.
        link: LinkId,
        /// Where.
        url: RtmpUrl,
    },
    /// Hand `tag` to the link, in the room an [`Input::Writable`] reported.
    Send {
        /// Which link.
        link: LinkId,
        /// The tag, timestamps already adjusted for this link.
        tag: Tag,
        /// Its sequence number in the stream, `None` for the headers a connection starts
        /// with (they prove nothing about the stream's delivery).
        seq: Option<u64>,
    },
    /// Flush everything handed over and close; with `unpublish`, end the stream first
    /// (FCUnpublish, deleteStream). The link answers with [`Input::Closed`] and keeps
    /// reporting [`Input::Delivered`] until then.
    Finish {
        /// Which link.
        link: LinkId,
        /// End the stream (a stop), not just the connection (a move).
        unpublish: bool,
    },
    /// Drop the link or the connection attempt at once; no answer is expected.
    Close {
        /// Which link.
        link: LinkId,
    },
}
