//! The session's event loop: routing tags to links, switching at keyframes, resuming.

use std::collections::VecDeque;
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::bitrate::{BitrateChange, BitrateControl};
use super::congestion::Congestion;
use super::retained::Retained;
use super::{
    Cause, Cutover, CutoverKind, MigrationMode, Report, SessionConfig, SessionError, SessionEvent,
    TagInput,
};
use crate::media::{Tag, TagKind};
use crate::protocol::Event;
use crate::transport::io::sleep_until_some;
use crate::transport::link::{Command, Slot};
use crate::transport::{establish, Established, Link, LinkError, LinkEvent, RtmpUrl, UrlError};

/// Retry interval while a server still holds the key of a connection we just closed.
const KEY_RELEASE_RETRY: Duration = Duration::from_millis(100);

/// Publishes everything `input` yields to `config.url`, moving between connections as the
/// server asks or as connections fail, until the producer closes the channel; then ends the
/// stream cleanly (FCUnpublish, deleteStream).
///
/// The first connection's failure is returned at once; later failures are retried.
pub async fn run<I: TagInput>(
    config: SessionConfig,
    input: I,
    events: Option<mpsc::UnboundedSender<SessionEvent>>,
) -> Result<Report, SessionError> {
    let first = establish(&config.url, &config.link)
        .await
        .map_err(|e| match e.is_retryable() {
            true => SessionError::Connect(e),
            false => SessionError::Fatal(e),
        })?;
    let (drain_tx, drain_rx) = mpsc::unbounded_channel();
    let congestion = match (config.congestion, config.dynamic_bitrate) {
        (thresholds, Some(_)) => Some(Congestion::measuring(thresholds.unwrap_or_default())),
        (Some(thresholds), None) => Some(Congestion::dropping(thresholds)),
        (None, None) => None,
    };
    let bitrate = config.dynamic_bitrate.map(BitrateControl::new);
    if let Some(bitrate) = &bitrate {
        config.handle.set_video_bitrate(bitrate.current());
    }
    let mut runner = Runner {
        url: config.url.clone(),
        buffer: Retained::new(config.buffer),
        congestion,
        bitrate,
        catch_up_end: 0,
        config,
        input,
        cursor: 0,
        input_done: false,
        active: None,
        standby: None,
        draining: Vec::new(),
        drain_tx,
        drain_rx,
        connecting: None,
        retry: None,
        attempts: 0,
        migration: None,
        standby_signal: None,
        lost_at: None,
        preamble: VecDeque::new(),
        finishing: false,
        report: Report::default(),
        events,
        next_drain_id: 0,
    };
    runner.activate(first);
    runner.run().await
}

struct Active {
    link: Link,
    /// Sequence number of the first stream tag sent on this link.
    since: u64,
    /// Subtracted from timestamps on this link (0 unless rebasing).
    ts_offset: u32,
}

struct Draining {
    id: u64,
    since: u64,
    /// The switch point: this link carries tags before it only.
    until: u64,
    delivered: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Make-before-break: a connection to keep publishing, idle, until the keyframe.
    Standby,
    /// A connection that takes over at the cursor as soon as it is up.
    Resume,
}

struct Migration {
    cause: Cause,
    target: RtmpUrl,
    started: Instant,
    deadline: Instant,
    deadline_passed: bool,
    break_before_make: bool,
    /// Break-before-make: the drain id of the old connection being closed.
    closing: Option<u64>,
}

/// An unplanned drop being recovered: when it happened and what it resent.
struct Loss {
    at: Instant,
    duplicates: u64,
}

/// What woke the event loop.
enum Wake {
    Input(Option<Tag>),
    Slot(Option<Slot>),
    Active(Option<LinkEvent>),
    Standby(Option<LinkEvent>),
    Drained(u64, Result<(), LinkError>),
    Connected(Box<(Result<Established, LinkError>, Purpose)>),
    Retry,
    Deadline,
    MoveRequested,
}

struct Runner<I> {
    config: SessionConfig,
    /// Where the stream goes now (changes with redirects).
    url: RtmpUrl,
    input: I,
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
    standby: Option<Link>,
    draining: Vec<Draining>,
    drain_tx: mpsc::UnboundedSender<(u64, Result<(), LinkError>)>,
    drain_rx: mpsc::UnboundedReceiver<(u64, Result<(), LinkError>)>,
    connecting: Option<(JoinHandle<Result<Established, LinkError>>, Purpose)>,
    retry: Option<(Instant, Purpose)>,
    attempts: u32,
    migration: Option<Migration>,
    /// A move request the standby connection's server sent before the switch.
    standby_signal: Option<Event>,
    lost_at: Option<Loss>,
    /// Headers to send on the active link before the tag at the cursor.
    preamble: VecDeque<Tag>,
    /// The producer is done and the active link was asked to end the stream.
    finishing: bool,
    report: Report,
    events: Option<mpsc::UnboundedSender<SessionEvent>>,
    next_drain_id: u64,
}

async fn next_event(events: Option<&mut mpsc::UnboundedReceiver<LinkEvent>>) -> Option<LinkEvent> {
    match events {
        Some(events) => events.recv().await,
        None => pending().await,
    }
}

impl<I: TagInput> Runner<I> {
    fn emit(&self, event: SessionEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    async fn run(mut self) -> Result<Report, SessionError> {
        loop {
            self.release();
            if self.maybe_finish() {
                self.report.peak_buffer_bytes = self.buffer.peak_bytes();
                return Ok(self.report);
            }
            let caught_up = self.preamble.is_empty() && self.cursor == self.buffer.end();
            let want_input = !self.input_done
                && (self.config.live_source || (self.active.is_some() && caught_up));
            let sending = !caught_up && !self.finishing;
            let deadline = self
                .migration
                .as_ref()
                .filter(|m| !m.deadline_passed)
                .map(|m| m.deadline);
            let retry_at = self
                .retry
                .filter(|_| self.connecting.is_none())
                .map(|(at, _)| at);
            let (active_tx, active_events) = match self.active.as_mut() {
                Some(active) => {
                    let (tx, events) = active.link.parts();
                    (Some(tx), Some(events))
                }
                None => (None, None),
            };
            let handle = Arc::clone(&self.config.handle);
            let wake = tokio::select! {
                tag = self.input.next_tag(), if want_input => Wake::Input(tag),
                slot = reserve(active_tx.cloned()), if sending => Wake::Slot(slot),
                event = next_event(active_events) => Wake::Active(event),
                event = next_event(self.standby.as_mut().map(|l| l.parts().1)) => Wake::Standby(event),
                Some((id, result)) = self.drain_rx.recv() => Wake::Drained(id, result),
                joined = join(&mut self.connecting), if self.connecting.is_some() => Wake::Connected(Box::new(joined)),
                () = sleep_until_some(retry_at), if retry_at.is_some() => Wake::Retry,
                () = sleep_until_some(deadline), if deadline.is_some() => Wake::Deadline,
                () = handle.requested() => Wake::MoveRequested,
            };
            match wake {
                Wake::Input(tag) => self.on_input(tag),
                Wake::Slot(Some(slot)) => self.send_next(slot),
                // The link task ended; its Closed event follows.
                Wake::Slot(None) => {}
                Wake::Active(event) => self.on_active_event(event)?,
                Wake::Standby(event) => self.on_standby_event(event),
                Wake::Drained(id, result) => self.on_drained(id, result),
                Wake::Connected(joined) => {
                    let (result, purpose) = *joined;
                    self.connecting = None;
                    self.on_connected(result, purpose)?;
                }
                Wake::Retry => {
                    if let Some((_, purpose)) = self.retry.take() {
                        self.start_connecting(purpose);
                    }
                }
                Wake::MoveRequested => {
                    if let Some(server) = self.config.handle.take_move_request() {
                        self.on_move_request(&server);
                    }
                }
                Wake::Deadline => {
                    if let Some(m) = &mut self.migration {
                        m.deadline_passed = true;
                        log::warn!(
                            "no keyframe within {:?} of the {} signal: switching at the next packet",
                            self.config.keyframe_deadline,
                            m.cause
                        );
                    }
                }
            }
        }
    }

    fn on_input(&mut self, tag: Option<Tag>) {
        let Some(tag) = tag else {
            self.input_done = true;
            return;
        };
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
            let now = self
                .bitrate
                .as_ref()
                .filter(|_| tag.kind == TagKind::Video && tag.is_frame())
                .map(|_| Instant::now());
            let raised = self
                .bitrate
                .as_mut()
                .zip(now)
                .and_then(|(bitrate, now)| bitrate.poll_raise(now));
            let mut dropped = 0;
            let front = self.cursor.max(self.catch_up_end);
            let admitted = congestion.admit(&mut self.buffer, front, &tag, &mut dropped);
            self.config.handle.add_dropped_frames(dropped);
            self.config.handle.set_congestion(congestion.level());
            let lowered = match (self.bitrate.as_mut(), now, congestion.waiting()) {
                (Some(bitrate), Some(now), Some(waiting)) => bitrate.on_backlog(now, waiting),
                _ => None,
            };
            for change in [raised, lowered].into_iter().flatten() {
                self.bitrate_changed(change);
            }
            if !admitted {
                return;
            }
        }
        self.buffer.push(tag);
        let lost = self.buffer.enforce_limits(self.cursor);
        if lost > 0 {
            self.report.lost += lost;
            self.config.handle.update(|s| s.lost = self.report.lost);
            log::warn!("buffer limit reached: dropped {lost} unsent frames");
            self.emit(SessionEvent::FramesDropped { count: lost });
        }
        self.cursor = self.cursor.max(self.buffer.first());
    }

    fn bitrate_changed(&self, change: BitrateChange) {
        self.config.handle.set_video_bitrate(change.kbps);
        self.emit(SessionEvent::BitrateChanged(change));
    }

    /// Forgets tags every link has provably delivered.
    fn release(&mut self) {
        let mut keep = self.cursor;
        if let Some(active) = &self.active {
            keep = keep.min(active.link.delivered().max(active.since));
        }
        for d in &self.draining {
            let delivered = d.delivered.load(Ordering::Acquire).max(d.since);
            if delivered < d.until {
                keep = keep.min(delivered);
            }
        }
        self.buffer.release_before(keep);
        self.config.handle.set_buffer_bytes(self.buffer.bytes());
    }

    /// Ends the stream once the producer is done and everything was handed over; returns
    /// true when the last link has closed.
    fn maybe_finish(&mut self) -> bool {
        let caught_up = self.preamble.is_empty() && self.cursor == self.buffer.end();
        if !self.input_done || !caught_up {
            return false;
        }
        if let Some(active) = &self.active {
            if !self.finishing {
                if self.migration.take().is_some() {
                    log::info!(
                        "input ended during a migration: finishing on the current connection"
                    );
                }
                self.standby = None;
                if let Some((task, _)) = self.connecting.take() {
                    task.abort();
                }
                active.link.finish(true);
                self.finishing = true;
            }
            return false;
        }
        self.finishing && self.draining.is_empty()
    }

    fn send_next(&mut self, slot: Slot) {
        let Some(active) = &self.active else { return };
        let offset = active.ts_offset;
        if let Some(tag) = self.preamble.pop_front() {
            slot.send(rebased(tag, offset), None);
            return;
        }
        let Some(tag) = self.buffer.get(self.cursor).cloned() else {
            return;
        };
        if let Some(m) = &self.migration {
            if m.deadline_passed || self.buffer.is_resume_point(&tag) {
                if self.standby.is_some() {
                    drop(slot);
                    self.switch();
                    return;
                }
                if m.break_before_make && m.closing.is_none() {
                    drop(slot);
                    self.break_now();
                    return;
                }
            }
        }
        let bytes = tag.data.len() as u64;
        self.config.handle.add_bytes_sent(bytes);
        if let Some(bitrate) = &mut self.bitrate {
            bitrate.on_sent(Instant::now(), bytes);
        }
        slot.send(rebased(tag, offset), Some(self.cursor));
        self.cursor += 1;
    }

    /// Make-before-break: the standby link takes over at the cursor (a keyframe).
    fn switch(&mut self) {
        let (Some(old), Some(link), Some(m)) = (
            self.active.take(),
            self.standby.take(),
            self.migration.take(),
        ) else {
            return;
        };
        let until = self.cursor;
        self.drain(old, until);
        self.url = link.url().clone();
        let server = self.url.to_string();
        self.config.handle.update(|s| s.server = server);
        self.install(
            link,
            Some(m.started),
            m.cause,
            CutoverKind::MakeBeforeBreak,
            0,
        );
        if let Some(event) = self.standby_signal.take() {
            self.on_server_event(event);
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
        link: Link,
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
        self.active = Some(Active {
            link,
            since: self.cursor,
            ts_offset,
        });
        if let Some(started) = started {
            let cutover = Cutover {
                cause,
                kind,
                keyframe_timestamp: timestamp,
                took: started.elapsed(),
                duplicates,
            };
            log::info!(
                "stream moved ({kind}, {cause}) at {timestamp} ms after {:?}",
                cutover.took
            );
            self.report.cutovers.push(cutover.clone());
            let (lost, duplicates) = (self.report.lost, self.report.duplicates);
            self.config.handle.update(|s| {
                s.moves.push(cutover.clone());
                s.lost = lost;
                s.duplicates = duplicates;
            });
            self.emit(SessionEvent::Moved(cutover));
        }
    }

    fn activate(&mut self, established: Established) {
        let connect_time = established.connect_time;
        let link = established.spawn(&self.config.link);
        self.report.connections += 1;
        self.attempts = 0;
        self.url = link.url().clone();
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
            self.install(link, Some(m.started), m.cause, kind, duplicates);
        } else if let Some(loss) = self.lost_at.take() {
            self.install(
                link,
                Some(loss.at),
                Cause::ConnectionLost,
                CutoverKind::Resumed,
                loss.duplicates,
            );
        } else {
            self.install(link, None, Cause::ConnectionLost, CutoverKind::Resumed, 0);
        }
    }

    /// Flushes and closes `old` in the background; returns its drain id.
    fn drain(&mut self, old: Active, until: u64) -> u64 {
        let id = self.next_drain_id;
        self.next_drain_id += 1;
        old.link.finish(false);
        self.draining.push(Draining {
            id,
            since: old.since,
            until,
            delivered: old.link.delivered_counter(),
        });
        let tx = self.drain_tx.clone();
        let mut link = old.link;
        tokio::spawn(async move {
            let result = loop {
                match link.event().await {
                    Some(LinkEvent::Closed(result)) => break result,
                    Some(LinkEvent::Server(_)) => {}
                    None => break Err(LinkError::ClosedByServer),
                }
            };
            let _ = tx.send((id, result));
        });
        id
    }

    fn on_drained(&mut self, id: u64, result: Result<(), LinkError>) {
        let Some(index) = self.draining.iter().position(|d| d.id == id) else {
            return;
        };
        let d = self.draining.remove(index);
        let delivered = d.delivered.load(Ordering::Acquire).max(d.since);
        let breaking = self
            .migration
            .as_ref()
            .is_some_and(|m| m.closing == Some(id));
        if let Err(error) = result {
            if delivered < d.until && breaking {
                // Break-before-make: nothing was sent after it yet, so resend from the
                // keyframe before what the old connection did not deliver.
                let resume = self.buffer.resume_point_at_or_before(delivered);
                let duplicates = self.buffer.frames_between(resume, delivered);
                self.report.duplicates += duplicates;
                self.lost_at = Some(Loss {
                    at: Instant::now(),
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

    /// What the active connection's server said.
    fn on_server_event(&mut self, event: Event) {
        match event {
            Event::GoAway => self.start_migration(Cause::GoAway, self.url.clone()),
            Event::ReconnectRequest {
                tc_url,
                description,
            } => {
                log::info!(
                    "server requests reconnect{}",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                );
                let target = self.reconnect_target(tc_url.as_deref());
                self.start_migration(Cause::ReconnectRequest, target);
            }
            Event::Status { code, description } => {
                log::info!("server status {code} {}", description.unwrap_or_default());
            }
            Event::Connected | Event::Publishing => {}
        }
    }

    fn on_active_event(&mut self, event: Option<LinkEvent>) -> Result<(), SessionError> {
        match event {
            Some(LinkEvent::Server(event)) => self.on_server_event(event),
            Some(LinkEvent::Closed(Ok(()))) if self.finishing => self.active = None,
            Some(LinkEvent::Closed(result)) => {
                let error = result.err().unwrap_or(LinkError::ClosedByServer);
                self.on_connection_lost(error)?;
            }
            None => self.on_connection_lost(LinkError::ClosedByServer)?,
        }
        Ok(())
    }

    /// The active connection died: rewind to the keyframe before its first undelivered tag.
    fn on_connection_lost(&mut self, error: LinkError) -> Result<(), SessionError> {
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        let undelivered = active.link.delivered().max(active.since);
        if self.finishing && undelivered >= self.buffer.end() {
            // Everything arrived; only the goodbye was cut short.
            self.active = None;
            return Ok(());
        }
        if !error.is_retryable() {
            return Err(SessionError::Fatal(error));
        }
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
            at: Instant::now(),
            duplicates,
        });
        if let Some(link) = self.standby.take() {
            // The old server left before the keyframe: the new connection is ready.
            let (started, cause) = self.migration.take().map_or_else(
                || (Instant::now(), Cause::ConnectionLost),
                |m| (m.started, m.cause),
            );
            self.lost_at = None;
            self.url = link.url().clone();
            self.install(link, Some(started), cause, CutoverKind::Resumed, duplicates);
        } else if let Some((_, purpose)) = &mut self.connecting {
            *purpose = Purpose::Resume;
        } else {
            self.schedule(Purpose::Resume);
        }
        Ok(())
    }

    fn schedule(&mut self, purpose: Purpose) {
        let delay = self.config.reconnect.delay(self.attempts);
        self.attempts += 1;
        self.emit(SessionEvent::Reconnecting {
            attempt: self.attempts,
            delay,
        });
        self.retry = Some((Instant::now() + delay, purpose));
    }

    fn on_standby_event(&mut self, event: Option<LinkEvent>) {
        match event {
            Some(LinkEvent::Server(event @ (Event::GoAway | Event::ReconnectRequest { .. }))) => {
                // The new server wants the stream elsewhere too: move on after the switch.
                log::info!(
                    "the new connection's server sent {event:?}; moving again after the switch"
                );
                self.standby_signal = Some(event);
            }
            Some(LinkEvent::Server(_)) => {}
            Some(LinkEvent::Closed(result)) => {
                self.standby = None;
                self.standby_signal = None;
                if let Err(error) = result {
                    log::warn!("standby connection failed before the switch: {error}");
                }
                if self.migration.is_some() {
                    self.schedule(Purpose::Standby);
                }
            }
            None => self.standby = None,
        }
    }

    /// The user asked to move to `server`: the same move a Reconnect Request naming it
    /// makes, always make-before-break.
    fn on_move_request(&mut self, server: &str) {
        match self.url.resolve_reconnect(server) {
            Ok(target) => {
                log::info!("switching server on request: {target}");
                self.start_migration(Cause::UserRequest, target);
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

    fn start_migration(&mut self, cause: Cause, target: RtmpUrl) {
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
        let now = Instant::now();
        let break_before_make = self.config.mode == MigrationMode::BreakBeforeMake;
        self.migration = Some(Migration {
            cause,
            target,
            started: now,
            deadline: now + self.config.keyframe_deadline,
            deadline_passed: false,
            break_before_make,
            closing: None,
        });
        self.attempts = 0;
        if !break_before_make {
            self.start_connecting(Purpose::Standby);
        }
    }

    fn start_connecting(&mut self, purpose: Purpose) {
        let target = self
            .migration
            .as_ref()
            .map_or_else(|| self.url.clone(), |m| m.target.clone());
        let options = self.config.link.clone();
        let task = tokio::spawn(async move { establish(&target, &options).await });
        self.connecting = Some((task, purpose));
    }

    fn on_connected(
        &mut self,
        result: Result<Established, LinkError>,
        purpose: Purpose,
    ) -> Result<(), SessionError> {
        match (result, purpose) {
            (Ok(established), Purpose::Standby) if self.active.is_some() => {
                if self.migration.is_some() {
                    log::info!(
                        "new connection publishing after {:?}; switching at the next keyframe",
                        established.connect_time
                    );
                    self.report.connections += 1;
                    self.emit(SessionEvent::Publishing {
                        url: established.url().to_string(),
                        connect_time: established.connect_time,
                    });
                    self.standby = Some(established.spawn(&self.config.link));
                }
            }
            (Ok(established), _) => self.activate(established),
            (Err(error), Purpose::Standby) if error.is_key_in_use() => {
                log::info!("server refused a second publisher ({error}): falling back to break-before-make");
                if let Some(m) = &mut self.migration {
                    m.break_before_make = true;
                }
            }
            (Err(error), Purpose::Standby) if !error.is_retryable() => {
                // A wrong password or certificate at the target stays wrong: keep streaming
                // here rather than retry until the old server goes down.
                log::warn!(
                    "could not open the new connection: {error}; staying on the current connection"
                );
                self.migration = None;
            }
            (Err(error), Purpose::Standby) => {
                log::warn!("could not open the new connection: {error}");
                if self.attempts >= self.config.reconnect.max_retries {
                    log::warn!("giving up the migration; staying on the current connection");
                    self.migration = None;
                } else {
                    self.schedule(Purpose::Standby);
                }
            }
            (Err(error), Purpose::Resume) => {
                if !error.is_retryable() {
                    return Err(SessionError::Fatal(error));
                }
                if self.attempts >= self.config.reconnect.max_retries {
                    return Err(SessionError::GaveUp {
                        attempts: self.attempts,
                        last: error,
                    });
                }
                log::warn!("reconnection failed: {error}");
                // A key still held by the old connection frees up within moments.
                if error.is_key_in_use() && self.attempts < 8 {
                    self.attempts += 1;
                    self.retry = Some((Instant::now() + KEY_RELEASE_RETRY, purpose));
                } else {
                    self.schedule(purpose);
                }
            }
        }
        Ok(())
    }
}

async fn reserve(tx: Option<mpsc::Sender<Command>>) -> Option<Slot> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok().map(Slot::new),
        None => pending().await,
    }
}

async fn join(
    connecting: &mut Option<(JoinHandle<Result<Established, LinkError>>, Purpose)>,
) -> (Result<Established, LinkError>, Purpose) {
    match connecting {
        Some((task, purpose)) => {
            let result = match task.await {
                Ok(result) => result,
                Err(e) => Err(LinkError::Io(std::io::Error::other(e))),
            };
            (result, *purpose)
        }
        None => pending().await,
    }
}

fn rebased(tag: Tag, offset: u32) -> Tag {
    Tag {
        timestamp: tag.timestamp.wrapping_sub(offset),
        ..tag
    }
}
