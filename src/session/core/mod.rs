//! The session's decisions, with no I/O and no clock: which connection carries which tag,
//! when to switch, what to keep for a resume, when to reconnect.
//!
//! [`SessionCore`] is driven like quinn-proto's `Connection`: the driver feeds it
//! [`Input`]s and timeouts, each with the current time, and carries out what it then polls
//! out of it. See the type for the polling order.
//!
//! One file per concern: [`api`] the inputs and commands, `media` what is kept and sent,
//! `links` connections coming and going, `moves` moving the stream on request, `silence`
//! paths that die without a word.

use std::collections::VecDeque;
use std::time::Instant;

use super::bitrate::BitrateControl;
use super::congestion::Congestion;
use super::retained::Retained;
use super::{Cause, Report, SessionConfig, SessionError, SessionEvent};
use crate::media::Tag;
use crate::protocol::Event;
use crate::transport::{PathState, PathWatch, RtmpUrl, SilenceRule};

mod api;
mod links;
mod media;
mod moves;
mod silence;

pub use api::{Command, Input, LinkId};

struct Active {
    id: LinkId,
    /// Sequence number of the first stream tag sent on this link.
    since: u64,
    /// Subtracted from timestamps on this link (0 unless rebasing).
    ts_offset: u32,
    delivered: u64,
    /// The link starts where no decoder can (the buffer limit dropped the keyframe before
    /// its first tag): video frames are skipped until a keyframe.
    needs_keyframe: bool,
    /// Its TCP state: alive, congested or silent.
    watch: PathWatch,
    path: PathState,
    /// A race for the way back already ran in this silence (one per silence).
    raced: bool,
}

impl Active {
    fn undelivered(&self) -> u64 {
        self.delivered.max(self.since)
    }
}

struct Standby {
    id: LinkId,
    url: RtmpUrl,
}

struct Draining {
    id: LinkId,
    since: u64,
    /// The switch point: this link carries tags before it only.
    until: u64,
    delivered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The session's first connection: its failure ends the session.
    First,
    /// Make-before-break: a connection to keep publishing, idle, until the keyframe.
    Standby,
    /// A connection that takes over at the cursor as soon as it is up.
    Resume,
}

struct Connecting {
    id: LinkId,
    purpose: Purpose,
    url: RtmpUrl,
}

struct Migration {
    cause: Cause,
    target: RtmpUrl,
    started: Instant,
    deadline: Instant,
    deadline_passed: bool,
    /// A resume point arrived since the signal: the deadline no longer applies (the
    /// switch waits for a keyframe however long the new connection takes).
    keyframe_seen: bool,
    break_before_make: bool,
    /// Break-before-make: the old connection being closed.
    closing: Option<LinkId>,
}

/// An unplanned drop being recovered: when it happened and what it resent.
struct Loss {
    at: Instant,
    duplicates: u64,
}

/// One logical stream over a succession of connections, as pure state.
///
/// # Polling order
///
/// After every [`handle_input`](Self::handle_input) or
/// [`handle_timeout`](Self::handle_timeout), the driver:
///
/// 1. carries out every [`poll_command`](Self::poll_command) until `None` (in order: a
///    `Send` must use the room of the `Writable` just handled);
/// 2. forwards every [`poll_event`](Self::poll_event);
/// 3. returns [`poll_outcome`](Self::poll_outcome) if it is `Some` (the session is over);
/// 4. waits for the next input: a tag only while [`wants_input`](Self::wants_input), room
///    on the link [`wants_room`](Self::wants_room) names, link events of every open link,
///    and the timer [`poll_timeout`](Self::poll_timeout) gives (re-armed every time).
///
/// The core never reads a clock: every entry point takes `now`, which must not go back.
pub struct SessionCore {
    config: SessionConfig,
    /// Where the stream goes now (changes with redirects).
    url: RtmpUrl,
    buffer: Retained,
    /// Live sources: what to drop when the connection falls behind.
    congestion: Option<Congestion>,
    /// Dynamic bitrate: what to ask of the encoder instead of dropping.
    bitrate: Option<BitrateControl>,
    /// End of the backlog the active connection started with (never dropped).
    catch_up_end: u64,
    /// The next stream tag to send on the active link.
    cursor: u64,
    input_done: bool,
    active: Option<Active>,
    standby: Option<Standby>,
    draining: Vec<Draining>,
    connecting: Option<Connecting>,
    retry: Option<(Instant, Purpose)>,
    /// Reconnection attempts on the policy's schedule since the stream last published.
    attempts: u32,
    /// Quick retries made since then while the server still held the key.
    key_waits: u32,
    migration: Option<Migration>,
    /// Fresh connections racing for the way back from a silent path.
    race: Option<silence::Race>,
    /// A move request the standby connection's server sent before the switch.
    standby_signal: Option<Event>,
    lost_at: Option<Loss>,
    /// Frames the buffer limit dropped before the server acknowledged them: (the sequence
    /// number after the last of them, how many). Lost if their connection fails.
    evicted: VecDeque<(u64, u64)>,
    /// Headers to send on the active link before the tag at the cursor.
    preamble: VecDeque<Tag>,
    /// The producer is done and the active link was asked to end the stream.
    finishing: bool,
    report: Report,
    next_link: u64,
    commands: VecDeque<Command>,
    events: VecDeque<SessionEvent>,
    outcome: Option<Result<Report, SessionError>>,
}

impl SessionCore {
    /// A session for `config`; its first command opens the first connection.
    pub fn new(config: SessionConfig) -> Self {
        let congestion = match (config.congestion, config.dynamic_bitrate) {
            (thresholds, Some(_)) => Some(Congestion::measuring(thresholds.unwrap_or_default())),
            (Some(thresholds), None) => Some(Congestion::dropping(thresholds)),
            (None, None) => None,
        };
        let bitrate = config.dynamic_bitrate.map(BitrateControl::new);
        if let Some(bitrate) = &bitrate {
            config.handle.set_video_bitrate(bitrate.current());
        }
        let mut core = Self {
            url: config.url.clone(),
            buffer: Retained::new(config.buffer),
            congestion,
            bitrate,
            catch_up_end: 0,
            config,
            cursor: 0,
            input_done: false,
            active: None,
            standby: None,
            draining: Vec::new(),
            connecting: None,
            retry: None,
            attempts: 0,
            key_waits: 0,
            migration: None,
            race: None,
            standby_signal: None,
            lost_at: None,
            evicted: VecDeque::new(),
            preamble: VecDeque::new(),
            finishing: false,
            report: Report::default(),
            next_link: 0,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            outcome: None,
        };
        core.start_connecting(Purpose::First);
        core
    }

    /// Feeds one input at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.outcome.is_some() {
            return;
        }
        if let Err(error) = self.on_input(now, input) {
            self.outcome = Some(Err(error));
            return;
        }
        self.release();
        self.maybe_finish();
    }

    /// The timer from [`poll_timeout`](Self::poll_timeout) fired (or `now` passed it).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        if let Some(m) = &mut self.migration {
            if !m.deadline_passed && !m.keyframe_seen && now >= m.deadline {
                m.deadline_passed = true;
                log::warn!(
                    "no keyframe within {:?} of the {} signal: switching at the next packet",
                    self.config.keyframe_deadline,
                    m.cause
                );
            }
        }
        if let Err(error) = self.race_timeout(now) {
            self.outcome = Some(Err(error));
            return;
        }
        if self.connecting.is_none() {
            if let Some((at, purpose)) = self.retry {
                if now >= at {
                    self.retry = None;
                    self.start_connecting(purpose);
                }
            }
        }
        self.release();
        self.maybe_finish();
    }

    /// The next thing to do.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The next thing to tell the session's owner.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self
            .migration
            .as_ref()
            .filter(|m| !m.deadline_passed && !m.keyframe_seen)
            .map(|m| m.deadline);
        let retry = self
            .retry
            .filter(|_| self.connecting.is_none())
            .map(|(at, _)| at);
        let race = self.race.as_ref().map(silence::Race::next_open);
        deadline.into_iter().chain(retry).chain(race).min()
    }

    /// How the session ended, once it has: the driver then stops (dropping every link).
    #[must_use]
    pub fn poll_outcome(&mut self) -> Option<Result<Report, SessionError>> {
        self.outcome.take()
    }

    /// Whether to take the producer's next tag now: a live source's always (it cannot
    /// wait), a file's only when the connection has sent everything before it. Nothing is
    /// taken before the first connection publishes.
    #[must_use]
    pub fn wants_input(&self) -> bool {
        let started = self.report.connections > 0;
        !self.input_done
            && started
            && (self.config.live_source || (self.active.is_some() && self.caught_up()))
    }

    /// The link whose room for a tag the session waits for, if any.
    #[must_use]
    pub fn wants_room(&self) -> Option<LinkId> {
        let sending = !self.caught_up() && !self.finishing;
        self.active.as_ref().filter(|_| sending).map(|a| a.id)
    }

    /// Payload bytes held for resuming now.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.bytes()
    }

    fn caught_up(&self) -> bool {
        self.preamble.is_empty() && self.cursor == self.buffer.end()
    }

    fn emit(&mut self, event: SessionEvent) {
        self.events.push_back(event);
    }

    fn on_input(&mut self, now: Instant, input: Input) -> Result<(), SessionError> {
        match input {
            Input::Tag(tag) => self.on_tag(now, tag),
            Input::InputEnded => self.input_done = true,
            Input::Connected { link, connect_time } => self.on_connected(now, link, connect_time),
            Input::ConnectFailed { link, error } => self.on_connect_failed(now, link, error)?,
            Input::Server { link, event } => self.on_server(now, link, event),
            Input::Delivered { link, upto } => self.on_delivered(link, upto),
            Input::Writable { link } => {
                if self.active.as_ref().is_some_and(|a| a.id == link) {
                    self.send_next(now);
                }
            }
            Input::Closed { link, result } => self.on_closed(now, link, result)?,
            Input::MoveRequest { server } => self.on_move_request(now, &server),
            Input::PathStats { link, stats } => self.on_path_stats(now, link, &stats),
        }
        Ok(())
    }
}
