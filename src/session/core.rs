//! The session's decisions, with no I/O and no clock: which connection carries which tag,
//! when to switch, what to keep for a resume, when to reconnect.
//!
//! [`SessionCore`] is driven like quinn-proto's `Connection`: the driver feeds it
//! [`Input`]s and timeouts, each with the current time, and carries out what it then polls
//! out of it. See the type for the polling order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::bitrate::{BitrateChange, BitrateControl};
use super::congestion::Congestion;
use super::reconnect::{self, RetryAfterFailure};
use super::retained::Retained;
use super::{
    Cause, Cutover, CutoverKind, MigrationMode, Report, SessionConfig, SessionError, SessionEvent,
};
use crate::media::{Tag, TagKind};
use crate::protocol::Event;
use crate::transport::{LinkError, RtmpUrl, UrlError};

/// Ranges of unacknowledged evicted frames remembered separately; beyond, they merge.
const MAX_EVICTED_RANGES: usize = 64;

/// Names one connection over its whole life, from [`Command::Open`] to its close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Something that happened, for [`SessionCore::handle_input`].
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
    /// after [`SessionCore::wants_room`] named it.
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
}

/// What the driver must do, from [`SessionCore::poll_command`].
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
    attempts: u32,
    migration: Option<Migration>,
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
            migration: None,
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
        deadline.into_iter().chain(retry).min()
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
        }
        Ok(())
    }

    fn on_tag(&mut self, now: Instant, tag: Tag) {
        self.report.tags_in += 1;
        self.report.frames_in += u64::from(tag.is_frame());
        self.report.bytes_in += tag.data.len() as u64;
        // Without a connection nothing is congested: everything waits for the next one. After
        // a resume the backlog it carries is protected: only media that piles up behind it
        // counts, so catching up never drops frames a lossless resume promised.
        let congestion = self.congestion.as_mut().filter(|_| self.active.is_some());
        if let Some(congestion) = congestion {
            // Dynamic bitrate acts on video frames, as OBS's: a due raise first, then the
            // measured backlog may lower.
            let video_frame = tag.kind == TagKind::Video && tag.is_frame();
            let bitrate = self.bitrate.as_mut().filter(|_| video_frame);
            let raised = bitrate.and_then(|bitrate| bitrate.poll_raise(now));
            let mut dropped = 0;
            let front = self.cursor.max(self.catch_up_end);
            let admitted = congestion.admit(&mut self.buffer, front, &tag, &mut dropped);
            self.config.handle.add_dropped_frames(dropped);
            self.config.handle.set_congestion(congestion.level());
            let lowered = match (self.bitrate.as_mut(), congestion.waiting()) {
                (Some(bitrate), Some(waiting)) if video_frame => bitrate.on_backlog(now, waiting),
                _ => None,
            };
            for change in [raised, lowered].into_iter().flatten() {
                self.bitrate_changed(change);
            }
            if !admitted {
                return;
            }
        }
        let seq = self.buffer.push(tag);
        if let Some(m) = &mut self.migration {
            m.keyframe_seen |= self
                .buffer
                .get(seq)
                .is_some_and(|t| self.buffer.is_resume_point(t));
        }
        let evicted = self.buffer.enforce_limits(self.cursor, self.undelivered());
        if evicted.unacknowledged > 0 {
            self.evicted
                .push_back((self.buffer.first(), evicted.unacknowledged));
            if self.evicted.len() > MAX_EVICTED_RANGES {
                // A server that never acknowledges: keep the count, coarser.
                if let (Some((_, a)), Some((end, b))) =
                    (self.evicted.pop_front(), self.evicted.pop_front())
                {
                    self.evicted.push_front((end, a + b));
                }
            }
        }
        let lost = evicted.unsent;
        if lost > 0 {
            self.report.lost += lost;
            let total = self.report.lost;
            self.config.handle.update(|s| s.lost = total);
            log::warn!("buffer limit reached: dropped {lost} unsent frames");
            self.emit(SessionEvent::FramesDropped { count: lost });
        }
        self.cursor = self.cursor.max(self.buffer.first());
    }

    fn bitrate_changed(&mut self, change: BitrateChange) {
        self.config.handle.set_video_bitrate(change.kbps);
        self.emit(SessionEvent::BitrateChanged(change));
    }

    fn on_delivered(&mut self, link: LinkId, upto: u64) {
        if let Some(active) = self.active.as_mut().filter(|a| a.id == link) {
            active.delivered = active.delivered.max(upto);
        }
        if let Some(d) = self.draining.iter_mut().find(|d| d.id == link) {
            d.delivered = d.delivered.max(upto);
        }
    }

    /// The first sequence number some link has not provably delivered (the cursor if all
    /// have).
    fn undelivered(&self) -> u64 {
        let mut keep = self.cursor;
        if let Some(active) = &self.active {
            keep = keep.min(active.undelivered());
        }
        for d in &self.draining {
            let delivered = d.delivered.max(d.since);
            if delivered < d.until {
                keep = keep.min(delivered);
            }
        }
        keep
    }

    /// Forgets tags every link has provably delivered.
    fn release(&mut self) {
        let keep = self.undelivered();
        self.buffer.release_before(keep);
        while self.evicted.front().is_some_and(|&(end, _)| end <= keep) {
            self.evicted.pop_front();
        }
        self.config.handle.set_buffer_bytes(self.buffer.bytes());
    }

    /// A link that had not delivered past `delivered` failed: the frames after it that the
    /// buffer limit already dropped cannot be sent again. Returns how many (may be lost).
    fn evicted_after(&mut self, delivered: u64) -> u64 {
        let mut lost = 0;
        while self.evicted.back().is_some_and(|&(end, _)| end > delivered) {
            lost += self.evicted.pop_back().map_or(0, |(_, frames)| frames);
        }
        if lost > 0 {
            self.report.lost += lost;
            let total = self.report.lost;
            self.config.handle.update(|s| s.lost = total);
            log::warn!(
                "{lost} frames the buffer limit dropped before they were acknowledged may be lost"
            );
        }
        lost
    }

    /// Ends the stream once the producer is done and everything was handed over; the
    /// outcome is set when the last link has closed.
    fn maybe_finish(&mut self) {
        if !self.input_done || !self.caught_up() {
            return;
        }
        if let Some(active) = &self.active {
            if !self.finishing {
                if self.migration.take().is_some() {
                    log::info!(
                        "input ended during a migration: finishing on the current connection"
                    );
                }
                let link = active.id;
                if let Some(standby) = self.standby.take() {
                    self.commands.push_back(Command::Close { link: standby.id });
                }
                if let Some(connecting) = self.connecting.take() {
                    self.commands.push_back(Command::Close {
                        link: connecting.id,
                    });
                }
                self.commands.push_back(Command::Finish {
                    link,
                    unpublish: true,
                });
                self.finishing = true;
            }
            return;
        }
        if self.finishing && self.draining.is_empty() {
            let mut report = std::mem::take(&mut self.report);
            report.peak_buffer_bytes = self.buffer.peak_bytes();
            self.outcome = Some(Ok(report));
        }
    }

    fn send_next(&mut self, now: Instant) {
        let Some(active) = &self.active else { return };
        let (link, offset) = (active.id, active.ts_offset);
        if let Some(tag) = self.preamble.pop_front() {
            let tag = rebased(tag, offset);
            self.commands.push_back(Command::Send {
                link,
                tag,
                seq: None,
            });
            return;
        }
        let Some(tag) = self.next_decodable() else {
            return;
        };
        if let Some(m) = &self.migration {
            if m.deadline_passed || self.buffer.is_resume_point(&tag) {
                if self.standby.is_some() {
                    self.switch(now);
                    return;
                }
                if m.break_before_make && m.closing.is_none() {
                    self.break_now();
                    return;
                }
            }
        }
        let bytes = tag.data.len() as u64;
        self.config.handle.add_bytes_sent(bytes);
        if let Some(bitrate) = &mut self.bitrate {
            bitrate.on_sent(now, bytes);
        }
        self.commands.push_back(Command::Send {
            link,
            tag: rebased(tag, offset),
            seq: Some(self.cursor),
        });
        self.cursor += 1;
    }

    /// The tag at the cursor, after skipping the video frames a link that started without a
    /// keyframe cannot use (counted as lost).
    fn next_decodable(&mut self) -> Option<Tag> {
        loop {
            let tag = self.buffer.get(self.cursor)?.clone();
            let active = self.active.as_mut()?;
            if !active.needs_keyframe || tag.kind != TagKind::Video || !tag.is_frame() {
                return Some(tag);
            }
            if tag.is_keyframe() {
                active.needs_keyframe = false;
                return Some(tag);
            }
            self.cursor += 1;
            self.report.lost += 1;
            let total = self.report.lost;
            self.config.handle.update(|s| s.lost = total);
        }
    }

    /// Make-before-break: the standby link takes over at the cursor (a keyframe).
    fn switch(&mut self, now: Instant) {
        let (Some(old), Some(standby), Some(m)) = (
            self.active.take(),
            self.standby.take(),
            self.migration.take(),
        ) else {
            return;
        };
        let until = self.cursor;
        self.drain(old, until);
        self.url = standby.url;
        let server = self.url.to_string();
        self.config.handle.update(|s| s.server = server);
        self.install(
            now,
            standby.id,
            Some(m.started),
            m.cause,
            CutoverKind::MakeBeforeBreak,
            0,
        );
        if let Some(event) = self.standby_signal.take() {
            self.on_active_server_event(now, event);
        }
    }

    /// Break-before-make: close the old link at the cursor (a keyframe), connect after it
    /// has gone.
    fn break_now(&mut self) {
        let Some(old) = self.active.take() else {
            return;
        };
        let until = self.cursor;
        let id = self.drain(old, until);
        if let Some(m) = &mut self.migration {
            m.closing = Some(id);
        }
        log::info!("break-before-make: closing the old connection at the keyframe");
    }

    /// Makes `link` the active link at the cursor, preceded by the headers in force there.
    fn install(
        &mut self,
        now: Instant,
        link: LinkId,
        started: Option<Instant>,
        cause: Cause,
        kind: CutoverKind,
        duplicates: u64,
    ) {
        let timestamp = self.buffer.get(self.cursor).map_or(0, |t| t.timestamp);
        let ts_offset = if self.config.rebase_timestamps {
            timestamp
        } else {
            0
        };
        self.preamble = self.buffer.preamble(self.cursor).into();
        self.catch_up_end = self.buffer.end();
        if let Some(bitrate) = &mut self.bitrate {
            bitrate.reset_estimate();
        }
        // Only when no keyframe at all is left before the cursor: a switch at the keyframe
        // deadline starts mid-group on purpose, with the group's start already delivered.
        let behind = self.buffer.resume_point_at_or_before(self.cursor);
        let needs_keyframe = self.buffer.has_video()
            && self.cursor < self.buffer.end()
            && !self
                .buffer
                .get(behind)
                .is_some_and(|t| self.buffer.is_resume_point(t));
        if needs_keyframe {
            log::warn!(
                "the buffer limit dropped the keyframe to resume from: video waits for the next"
            );
        }
        self.active = Some(Active {
            id: link,
            since: self.cursor,
            ts_offset,
            delivered: 0,
            needs_keyframe,
        });
        if let Some(started) = started {
            let cutover = Cutover {
                cause,
                kind,
                keyframe_timestamp: timestamp,
                took: now.saturating_duration_since(started),
                duplicates,
            };
            log::info!(
                "stream moved ({kind}, {cause}) at {timestamp} ms after {:?}",
                cutover.took
            );
            self.report.cutovers.push(cutover.clone());
            let (lost, duplicates) = (self.report.lost, self.report.duplicates);
            let moved = cutover.clone();
            self.config.handle.update(|s| {
                s.moves.push(moved);
                s.lost = lost;
                s.duplicates = duplicates;
            });
            self.emit(SessionEvent::Moved(cutover));
        }
    }

    /// A connection is publishing and takes over at the cursor.
    fn activate(&mut self, now: Instant, link: LinkId, url: RtmpUrl, connect_time: Duration) {
        self.report.connections += 1;
        self.attempts = 0;
        self.url = url;
        self.config
            .handle
            .set_connect_time(u32::try_from(connect_time.as_millis()).unwrap_or(u32::MAX));
        let server = self.url.to_string();
        self.config.handle.update(|s| s.server = server);
        self.emit(SessionEvent::Publishing {
            url: self.url.to_string(),
            connect_time,
        });
        if let Some(m) = self.migration.take() {
            let kind = if m.break_before_make {
                CutoverKind::BreakBeforeMake
            } else {
                CutoverKind::Resumed
            };
            let duplicates = self.lost_at.take().map_or(0, |l| l.duplicates);
            self.install(now, link, Some(m.started), m.cause, kind, duplicates);
        } else if let Some(loss) = self.lost_at.take() {
            self.install(
                now,
                link,
                Some(loss.at),
                Cause::ConnectionLost,
                CutoverKind::Resumed,
                loss.duplicates,
            );
        } else {
            let cause = Cause::ConnectionLost;
            self.install(now, link, None, cause, CutoverKind::Resumed, 0);
        }
    }

    /// Asks the link to flush and close; it stays counted until it has.
    fn drain(&mut self, old: Active, until: u64) -> LinkId {
        self.commands.push_back(Command::Finish {
            link: old.id,
            unpublish: false,
        });
        self.draining.push(Draining {
            id: old.id,
            since: old.since,
            until,
            delivered: old.delivered,
        });
        old.id
    }

    fn on_closed(
        &mut self,
        now: Instant,
        link: LinkId,
        result: Result<(), LinkError>,
    ) -> Result<(), SessionError> {
        if self.active.as_ref().is_some_and(|a| a.id == link) {
            return match result {
                Ok(()) if self.finishing => {
                    self.active = None;
                    Ok(())
                }
                result => {
                    let error = result.err().unwrap_or(LinkError::ClosedByServer);
                    self.on_connection_lost(now, error)
                }
            };
        }
        if self.standby.as_ref().is_some_and(|s| s.id == link) {
            self.standby = None;
            self.standby_signal = None;
            if let Err(error) = result {
                log::warn!("standby connection failed before the switch: {error}");
            }
            if self.migration.is_some() {
                self.schedule(now, Purpose::Standby);
            }
            return Ok(());
        }
        if let Some(index) = self.draining.iter().position(|d| d.id == link) {
            let d = self.draining.remove(index);
            self.on_drained(now, d, result);
        }
        Ok(())
    }

    fn on_drained(&mut self, now: Instant, d: Draining, result: Result<(), LinkError>) {
        let delivered = d.delivered.max(d.since);
        let breaking = self
            .migration
            .as_ref()
            .is_some_and(|m| m.closing == Some(d.id));
        if result.is_err() && delivered < d.until {
            self.evicted_after(delivered);
        }
        if let Err(error) = result {
            if delivered < d.until && breaking {
                // Break-before-make: nothing was sent after it yet, so resend from the
                // keyframe before what the old connection did not deliver.
                let resume = self.buffer.resume_point_at_or_before(delivered);
                let duplicates = self.buffer.frames_between(resume, delivered);
                self.report.duplicates += duplicates;
                self.lost_at = Some(Loss {
                    at: now,
                    duplicates,
                });
                self.cursor = resume;
                log::warn!(
                    "old connection failed while closing ({error}); resending from tag {resume}"
                );
            } else if delivered < d.until {
                let lost = self.buffer.frames_between(delivered, d.until);
                self.report.lost += lost;
                log::warn!(
                    "old connection failed while draining ({error}): {lost} frames may be lost"
                );
            }
        }
        if breaking {
            self.start_connecting(Purpose::Resume);
        }
    }

    fn on_server(&mut self, now: Instant, link: LinkId, event: Event) {
        if self.active.as_ref().is_some_and(|a| a.id == link) {
            self.on_active_server_event(now, event);
        } else if self.standby.as_ref().is_some_and(|s| s.id == link) {
            if let Event::GoAway | Event::ReconnectRequest { .. } = event {
                // The new server wants the stream elsewhere too: move on after the switch.
                log::info!(
                    "the new connection's server sent {event:?}; moving again after the switch"
                );
                self.standby_signal = Some(event);
            }
        }
    }

    /// What the active connection's server said.
    fn on_active_server_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::GoAway => self.start_migration(now, Cause::GoAway, self.url.clone()),
            Event::ReconnectRequest {
                tc_url,
                description,
            } => {
                log::info!(
                    "server requests reconnect{}",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                );
                let target = self.reconnect_target(tc_url.as_deref());
                self.start_migration(now, Cause::ReconnectRequest, target);
            }
            Event::Status { code, description } => {
                log::info!("server status {code} {}", description.unwrap_or_default());
            }
            Event::Connected | Event::Publishing => {}
        }
    }

    /// The active connection died: rewind to the keyframe before its first undelivered tag.
    fn on_connection_lost(&mut self, now: Instant, error: LinkError) -> Result<(), SessionError> {
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        let undelivered = active.undelivered();
        if self.finishing && undelivered >= self.buffer.end() {
            // Everything arrived; only the goodbye was cut short.
            return Ok(());
        }
        if !error.is_retryable() {
            return Err(SessionError::Fatal(error));
        }
        self.evicted_after(undelivered);
        let resume = self.buffer.resume_point_at_or_before(undelivered);
        let duplicates = self
            .buffer
            .frames_between(resume, undelivered.min(self.cursor));
        self.report.duplicates += duplicates;
        log::warn!(
            "connection lost ({error}); resuming from tag {resume} ({duplicates} frames may repeat)"
        );
        self.emit(SessionEvent::ConnectionLost {
            error: error.to_string(),
        });
        self.cursor = resume;
        self.preamble.clear();
        self.finishing = false;
        self.lost_at = Some(Loss {
            at: now,
            duplicates,
        });
        if let Some(standby) = self.standby.take() {
            // The old server left before the keyframe: the new connection is ready.
            let (started, cause) = self
                .migration
                .take()
                .map_or((now, Cause::ConnectionLost), |m| (m.started, m.cause));
            self.lost_at = None;
            self.url = standby.url;
            let kind = CutoverKind::Resumed;
            self.install(now, standby.id, Some(started), cause, kind, duplicates);
        } else if let Some(connecting) = &mut self.connecting {
            connecting.purpose = Purpose::Resume;
        } else {
            self.schedule(now, Purpose::Resume);
        }
        Ok(())
    }

    fn schedule(&mut self, now: Instant, purpose: Purpose) {
        let delay = self.config.reconnect.delay(self.attempts);
        self.attempts += 1;
        self.emit(SessionEvent::Reconnecting {
            attempt: self.attempts,
            delay,
        });
        self.retry = Some((now + delay, purpose));
    }

    /// The user asked to move to `server`: the same move a Reconnect Request naming it
    /// makes, always make-before-break.
    fn on_move_request(&mut self, now: Instant, server: &str) {
        match self.url.resolve_reconnect(server) {
            Ok(target) => {
                log::info!("switching server on request: {target}");
                self.start_migration(now, Cause::UserRequest, target);
                if let Some(m) = &mut self.migration {
                    if m.break_before_make && m.cause == Cause::UserRequest {
                        m.break_before_make = false;
                        self.start_connecting(Purpose::Standby);
                    }
                }
            }
            Err(error) => log::warn!("cannot switch to the requested server: {error}"),
        }
    }

    /// Where a Reconnect Request's tcUrl (if any) points, or the current server.
    fn reconnect_target(&self, tc_url: Option<&str>) -> RtmpUrl {
        match tc_url.map(|reference| self.url.resolve_reconnect(reference)) {
            None => self.url.clone(),
            Some(Ok(target)) => target,
            Some(Err(UrlError::Downgrade)) => {
                log::warn!(
                    "ignoring a redirect from rtmps to plain rtmp; reconnecting to the same server"
                );
                self.url.clone()
            }
            Some(Err(error)) => {
                log::warn!("ignoring an unusable reconnect target ({error}); reconnecting to the same server");
                self.url.clone()
            }
        }
    }

    fn start_migration(&mut self, now: Instant, cause: Cause, target: RtmpUrl) {
        if let Some(m) = &self.migration {
            log::debug!("{cause} during a {} migration: coalesced", m.cause);
            return;
        }
        if self.finishing || self.active.is_none() {
            return;
        }
        log::info!("{cause}: moving the stream to {target} at the next keyframe");
        self.emit(SessionEvent::MoveRequested {
            cause,
            target: target.to_string(),
        });
        let break_before_make = self.config.mode == MigrationMode::BreakBeforeMake;
        self.migration = Some(Migration {
            cause,
            target,
            started: now,
            deadline: now + self.config.keyframe_deadline,
            deadline_passed: false,
            keyframe_seen: false,
            break_before_make,
            closing: None,
        });
        self.attempts = 0;
        if !break_before_make {
            self.start_connecting(Purpose::Standby);
        }
    }

    fn start_connecting(&mut self, purpose: Purpose) {
        let url = self
            .migration
            .as_ref()
            .map_or_else(|| self.url.clone(), |m| m.target.clone());
        let id = LinkId(self.next_link);
        self.next_link += 1;
        if let Some(old) = self.connecting.take() {
            self.commands.push_back(Command::Close { link: old.id });
        }
        self.commands.push_back(Command::Open {
            link: id,
            url: url.clone(),
        });
        self.connecting = Some(Connecting { id, purpose, url });
    }

    fn take_connecting(&mut self, link: LinkId) -> Option<Connecting> {
        match &self.connecting {
            Some(c) if c.id == link => self.connecting.take(),
            _ => None,
        }
    }

    fn on_connected(&mut self, now: Instant, link: LinkId, connect_time: Duration) {
        let Some(connecting) = self.take_connecting(link) else {
            // An attempt the session no longer wants.
            self.commands.push_back(Command::Close { link });
            return;
        };
        match connecting.purpose {
            Purpose::Standby if self.active.is_some() => {
                if self.migration.is_some() {
                    log::info!(
                        "new connection publishing after {connect_time:?}; switching at the next keyframe"
                    );
                    self.report.connections += 1;
                    self.emit(SessionEvent::Publishing {
                        url: connecting.url.to_string(),
                        connect_time,
                    });
                    self.standby = Some(Standby {
                        id: link,
                        url: connecting.url,
                    });
                } else {
                    self.commands.push_back(Command::Close { link });
                }
            }
            _ => self.activate(now, link, connecting.url, connect_time),
        }
    }

    fn on_connect_failed(
        &mut self,
        now: Instant,
        link: LinkId,
        error: LinkError,
    ) -> Result<(), SessionError> {
        let Some(connecting) = self.take_connecting(link) else {
            return Ok(());
        };
        match connecting.purpose {
            Purpose::First if error.is_retryable() => Err(SessionError::Connect(error)),
            Purpose::First => Err(SessionError::Fatal(error)),
            Purpose::Standby if error.is_key_in_use() => {
                log::info!("server refused a second publisher ({error}): falling back to break-before-make");
                if let Some(m) = &mut self.migration {
                    m.break_before_make = true;
                }
                Ok(())
            }
            Purpose::Standby if !error.is_retryable() => {
                // A wrong password or certificate at the target stays wrong: keep streaming
                // here rather than retry until the old server goes down.
                log::warn!(
                    "could not open the new connection: {error}; staying on the current connection"
                );
                self.migration = None;
                Ok(())
            }
            Purpose::Standby => {
                log::warn!("could not open the new connection: {error}");
                if self.attempts >= self.config.reconnect.max_retries {
                    log::warn!("giving up the migration; staying on the current connection");
                    self.migration = None;
                } else {
                    self.schedule(now, Purpose::Standby);
                }
                Ok(())
            }
            Purpose::Resume => {
                match reconnect::after_failure(&self.config.reconnect, self.attempts, &error) {
                    RetryAfterFailure::Fatal => return Err(SessionError::Fatal(error)),
                    RetryAfterFailure::GiveUp => {
                        return Err(SessionError::GaveUp {
                            attempts: self.attempts,
                            last: error,
                        })
                    }
                    RetryAfterFailure::KeyRelease(delay) => {
                        log::warn!("reconnection failed: {error}");
                        self.attempts += 1;
                        self.retry = Some((now + delay, Purpose::Resume));
                    }
                    RetryAfterFailure::Schedule => {
                        log::warn!("reconnection failed: {error}");
                        self.schedule(now, Purpose::Resume);
                    }
                }
                Ok(())
            }
        }
    }
}

fn rebased(tag: Tag, offset: u32) -> Tag {
    Tag {
        timestamp: tag.timestamp.wrapping_sub(offset),
        ..tag
    }
}
