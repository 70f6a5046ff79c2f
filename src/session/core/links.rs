//! Connections coming and going: opening, taking over, draining, failing, retrying.

use std::time::{Duration, Instant};

use super::super::reconnect::{self, RetryAfterFailure};
use super::super::{Cause, Cutover, CutoverKind, SessionError, SessionEvent};
use crate::transport::{LinkError, RtmpUrl};

use super::*;

impl SessionCore {
    /// Makes `link` the active link at the cursor, preceded by the headers in force there.
    pub(super) fn install(
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
        if let Some(race) = self.race.take() {
            // Whatever won, the stream has its connection: the race is over.
            self.close_attempts(race);
        }
        self.preamble = self.buffer.preamble(self.cursor).into();
        self.catch_up_end = self.buffer.end();
        if let Some(bitrate) = &mut self.bitrate {
            bitrate.reset_estimate();
        }
        // Only when no keyframe at all is left before the cursor: a switch at the keyframe
        // deadline starts mid-group on purpose, with the group's start already delivered.
        let behind = self.buffer.resume_point_at_or_before(self.cursor);
        // With nothing left to send (the limit dropped it all), a later connection's first
        // video frame is whatever the producer gives next: it too must be a keyframe.
        let needs_keyframe = self.buffer.has_video()
            && if self.cursor < self.buffer.end() {
                !self
                    .buffer
                    .get(behind)
                    .is_some_and(|t| self.buffer.is_resume_point(t))
            } else {
                started.is_some()
            };
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
            watch: PathWatch::starting(now, SilenceRule::default()),
            path: PathState::Idle,
            raced: false,
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
    pub(super) fn activate(
        &mut self,
        now: Instant,
        link: LinkId,
        url: RtmpUrl,
        connect_time: Duration,
    ) {
        self.report.connections += 1;
        self.attempts = 0;
        self.key_waits = 0;
        // A retry scheduled to get here (a race's winner may beat it) is moot.
        self.retry = None;
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
    pub(super) fn drain(&mut self, old: Active, until: u64) -> LinkId {
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

    pub(super) fn on_closed(
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

    pub(super) fn on_drained(&mut self, now: Instant, d: Draining, result: Result<(), LinkError>) {
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

    /// The active connection died: rewind to the keyframe before its first undelivered tag.
    pub(super) fn on_connection_lost(
        &mut self,
        now: Instant,
        error: LinkError,
    ) -> Result<(), SessionError> {
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
        } else if self.race.is_none() {
            self.schedule(now, Purpose::Resume);
        }
        Ok(())
    }

    pub(super) fn schedule(&mut self, now: Instant, purpose: Purpose) {
        let delay = self.config.reconnect.delay(self.attempts);
        self.attempts += 1;
        self.emit(SessionEvent::Reconnecting {
            attempt: self.attempts,
            delay,
        });
        self.retry = Some((now + delay, purpose));
    }

    pub(super) fn start_connecting(&mut self, purpose: Purpose) {
        let url = self
            .migration
            .as_ref()
            .map_or_else(|| self.url.clone(), |m| m.target.clone());
        let id = LinkId(self.next_link);
        self.next_link += 1;
        // This attempt is the one a scheduled retry would have made.
        self.retry = None;
        if let Some(old) = self.connecting.take() {
            self.commands.push_back(Command::Close { link: old.id });
        }
        self.commands.push_back(Command::Open {
            link: id,
            url: url.clone(),
        });
        self.connecting = Some(Connecting { id, purpose, url });
    }

    pub(super) fn take_connecting(&mut self, link: LinkId) -> Option<Connecting> {
        match &self.connecting {
            Some(c) if c.id == link => self.connecting.take(),
            _ => None,
        }
    }

    pub(super) fn on_connected(&mut self, now: Instant, link: LinkId, connect_time: Duration) {
        if self.race.as_ref().is_some_and(|r| r.has(link)) {
            return self.race_won(now, link, connect_time);
        }
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

    pub(super) fn on_connect_failed(
        &mut self,
        now: Instant,
        link: LinkId,
        error: LinkError,
    ) -> Result<(), SessionError> {
        if self.race.as_ref().is_some_and(|r| r.has(link)) {
            return self.race_attempt_failed(now, link, error);
        }
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
                let tried = (self.attempts, self.key_waits);
                match reconnect::after_failure(&self.config.reconnect, tried, &error) {
                    RetryAfterFailure::Fatal => return Err(SessionError::Fatal(error)),
                    RetryAfterFailure::GiveUp => {
                        return Err(SessionError::GaveUp {
                            attempts: self.attempts,
                            last: error,
                        })
                    }
                    RetryAfterFailure::KeyRelease(delay) => {
                        log::warn!("reconnection failed: {error}");
                        self.key_waits += 1;
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
