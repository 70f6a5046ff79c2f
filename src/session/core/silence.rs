//! Paths that die silently: no reset, no ICMP, every packet gone (Wi-Fi dropping, an ISP
//! link failing, a NAT forgetting the connection).
//!
//! The active link's TCP state tells a silent path from a slow one (see
//! [`PathWatch`]). While it is silent:
//! - nothing is dropped for congestion: whatever the path did not deliver is resent on the
//!   next connection, so dropping frames would only lose them;
//! - once it has been silent for about a second (a few round trips, never less than
//!   [`DEAD_RULE`]'s floor), the session **races for the way back**: it keeps the old
//!   connection and opens fresh ones every [`RACE_EVERY`] (each a new socket with its own
//!   SYN, not one attempt stuck in TCP's exponential SYN backoff), and continues on whichever
//!   delivers first: the old connection acknowledging again, or a new one publishing;
//! - a silence that outlasts the resume buffer costs its oldest frames (see `Retained`), and
//!   the race goes on at [`RACE_EVERY_PAST_BUFFER`], still with fresh sockets: the stream
//!   comes back about a second after the path, however long the silence. It gives up when
//!   the reconnection schedule would have ([`ReconnectPolicy::span`](crate::session::ReconnectPolicy::span)
//!   past the buffer);
//! - a new connection the server refuses (the old one still holds the key, say) proves the
//!   path is back: the old connection is dropped (its reset frees the key) and the normal
//!   reconnection schedule takes over, from an immediate attempt;
//! - the backlog that built up is protected from congestion dropping once the path is back,
//!   as a resume's is.

use std::time::{Duration, Instant};

use crate::transport::{DeliveryStats, LinkError, PathState, SilenceRule};

use super::*;

/// When a silent path counts as dead: eight round trips without an acknowledgement, and
/// never under a second (two of Linux's shortest retransmission timeouts and then some).
pub(super) const DEAD_RULE: SilenceRule = SilenceRule {
    rtts: 8,
    floor: Duration::from_secs(1),
};

/// How often a fresh connection attempt starts while the path is silent: bounds how long
/// the stall outlasts the silence.
pub(super) const RACE_EVERY: Duration = Duration::from_millis(250);

/// How often a fresh attempt starts once the silence has outlasted the resume buffer: the
/// stream is losing its oldest frames anyway, and an outage that long may last minutes.
pub(super) const RACE_EVERY_PAST_BUFFER: Duration = Duration::from_secs(1);

/// How long a racing attempt is kept: past its first SYN retransmission (1 s) it is only
/// waiting in TCP's backoff, and a fresher attempt does better.
const ATTEMPT_LIFE: Duration = Duration::from_millis(2_250);

/// A race for the way back: attempts opened while the path is silent.
pub(super) struct Race {
    /// When the path was declared dead.
    since: Instant,
    /// When the next attempt starts.
    next_open: Instant,
    /// Open attempts and when each started.
    attempts: Vec<(LinkId, Instant)>,
    /// Attempts started in all.
    opened: u32,
    /// The silence has outlasted the resume buffer (attempts come slower).
    past_buffer: bool,
}

impl Race {
    pub(super) fn next_open(&self) -> Instant {
        self.next_open
    }

    pub(super) fn has(&self, link: LinkId) -> bool {
        self.attempts.iter().any(|&(id, _)| id == link)
    }
}

impl SessionCore {
    /// A reading of `link`'s TCP state.
    pub(super) fn on_path_stats(&mut self, now: Instant, link: LinkId, stats: &DeliveryStats) {
        let Some(active) = self.active.as_mut().filter(|a| a.id == link) else {
            return;
        };
        let state = active.watch.observe(now, stats);
        let was_silent = matches!(active.path, PathState::Silent { .. });
        active.path = state;
        match state {
            PathState::Silent { quiet } => {
                let dead = quiet > DEAD_RULE.threshold(stats.rtt);
                let free_to_race = self.migration.is_none()
                    && self.standby.is_none()
                    && self.connecting.is_none()
                    && !self.finishing;
                if dead && free_to_race && !active.raced && self.race.is_none() {
                    active.raced = true;
                    log::warn!(
                        "path silent for {} ms (nothing acknowledged): opening new connections beside this one",
                        quiet.as_millis()
                    );
                    self.race = Some(Race {
                        since: now,
                        next_open: now,
                        attempts: Vec::new(),
                        opened: 0,
                        past_buffer: false,
                    });
                }
            }
            _ if was_silent => {
                active.raced = false;
                // The backlog the silence built is the old connection's to catch up on,
                // like a resume's: congestion must not drop it.
                self.catch_up_end = self.buffer.end();
                if let Some(race) = self.race.take() {
                    log::info!(
                        "path back on the same connection after {} ms of racing",
                        now.saturating_duration_since(race.since).as_millis()
                    );
                    self.close_attempts(race);
                }
            }
            _ => {}
        }
    }

    /// Whether the active link's path is silent (congestion then drops nothing).
    pub(super) fn path_silent(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| matches!(a.path, PathState::Silent { .. }))
    }

    /// Starts the race's next attempt and retires stale ones, when due; gives up once the
    /// race has lasted the buffer's length and the reconnection schedule's span.
    pub(super) fn race_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        let Some(race) = &mut self.race else {
            return Ok(());
        };
        if now < race.next_open {
            return Ok(());
        }
        let racing = now.saturating_duration_since(race.since);
        let buffered = self.config.buffer.max_duration;
        if racing > buffered + self.config.reconnect.span() {
            let attempts = race.opened;
            log::warn!(
                "no way back after {} s of silence: giving up",
                racing.as_secs()
            );
            if let Some(race) = self.race.take() {
                self.close_attempts(race);
            }
            if let Some(active) = self.active.take() {
                self.commands.push_back(Command::Close { link: active.id });
            }
            return Err(SessionError::GaveUp {
                attempts,
                last: LinkError::Stalled("the path stayed silent"),
            });
        }
        if racing > buffered && !race.past_buffer {
            race.past_buffer = true;
            log::warn!(
                "the silence outlasted the resume buffer ({} s): its oldest frames go; a fresh connection every {} s",
                buffered.as_secs_f32(),
                RACE_EVERY_PAST_BUFFER.as_secs()
            );
        }
        let commands = &mut self.commands;
        race.attempts.retain(|&(link, opened)| {
            let fresh = now.saturating_duration_since(opened) < ATTEMPT_LIFE;
            if !fresh {
                commands.push_back(Command::Close { link });
            }
            fresh
        });
        let link = LinkId(self.next_link);
        self.next_link += 1;
        race.attempts.push((link, now));
        race.opened += 1;
        race.next_open = now
            + if race.past_buffer {
                RACE_EVERY_PAST_BUFFER
            } else {
                RACE_EVERY
            };
        let url = self.url.clone();
        self.commands.push_back(Command::Open { link, url });
        Ok(())
    }

    /// A racing attempt is publishing: the stream continues on it.
    pub(super) fn race_won(&mut self, now: Instant, link: LinkId, connect_time: Duration) {
        let Some(race) = &mut self.race else { return };
        race.attempts.retain(|&(id, _)| id != link);
        log::info!(
            "new connection publishing {} ms into the silence; leaving the silent one",
            now.saturating_duration_since(race.since).as_millis()
        );
        // Before the race ends, so that losing the old link schedules nothing.
        self.abandon_active(now);
        if let Some(race) = self.race.take() {
            self.close_attempts(race);
        }
        if self.active.is_some() {
            // A move's standby, publishing already, took over from the old link.
            self.commands.push_back(Command::Close { link });
            return;
        }
        let url = self.url.clone();
        if self.migration.as_ref().is_some_and(|m| m.target != url) {
            // A move to another server was under way: it goes on from the new connection.
            let migration = self.migration.take();
            // Break-before-make opens the next connection only once it left this one.
            let standby = migration.as_ref().is_some_and(|m| !m.break_before_make);
            self.activate(now, link, url, connect_time);
            self.migration = migration;
            match &mut self.connecting {
                Some(connecting) => connecting.purpose = Purpose::Standby,
                None if standby => self.start_connecting(Purpose::Standby),
                None => {}
            }
        } else {
            // Any other attempt to take over at the cursor is moot now.
            if let Some(other) = self.connecting.take() {
                self.commands.push_back(Command::Close { link: other.id });
            }
            self.activate(now, link, url, connect_time);
        }
    }

    /// A racing attempt failed. An attempt that times out says nothing new; any other
    /// answer (refused, a key still held by the silent connection, ...) means the server is
    /// reachable again: the race ends, the silent connection is dropped (its reset frees
    /// the key) and the normal reconnection schedule, which begins at once, takes over.
    pub(super) fn race_attempt_failed(
        &mut self,
        now: Instant,
        link: LinkId,
        error: LinkError,
    ) -> Result<(), SessionError> {
        let Some(race) = &mut self.race else {
            return Ok(());
        };
        race.attempts.retain(|&(id, _)| id != link);
        if !error.is_retryable() {
            return Err(SessionError::Fatal(error));
        }
        if matches!(error, LinkError::Timeout(_)) {
            return Ok(());
        }
        log::info!("the server answers again ({error}): reconnecting");
        if let Some(race) = self.race.take() {
            self.close_attempts(race);
        }
        if self.active.is_some() {
            self.abandon_active(now);
        } else if self.connecting.is_none() && self.retry.is_none() {
            self.schedule(now, Purpose::Resume);
        }
        Ok(())
    }

    /// Closes the silent active link and rewinds to what it did not deliver (while a race
    /// goes on, nothing is scheduled).
    fn abandon_active(&mut self, now: Instant) {
        if let Some(active) = &self.active {
            self.commands.push_back(Command::Close { link: active.id });
            // Only retryable errors reach here, so the stream goes on.
            let _ = self.on_connection_lost(now, LinkError::Stalled("the path went silent"));
        }
    }

    pub(super) fn close_attempts(&mut self, race: Race) {
        for (link, _) in race.attempts {
            self.commands.push_back(Command::Close { link });
        }
    }
}
