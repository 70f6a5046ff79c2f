//! Moving the stream when a server or the user asks: make-before-break, break-before-make.

use std::time::Instant;

use super::super::{Cause, CutoverKind, MigrationMode, SessionEvent};
use crate::protocol::Event;
use crate::transport::{RtmpUrl, UrlError};

use super::*;

impl SessionCore {
    /// Make-before-break: the standby link takes over at the cursor (a keyframe).
    pub(super) fn switch(&mut self, now: Instant) {
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
    pub(super) fn break_now(&mut self) {
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

    pub(super) fn on_server(&mut self, now: Instant, link: LinkId, event: Event) {
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
    pub(super) fn on_active_server_event(&mut self, now: Instant, event: Event) {
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

    /// The user asked to move to `server`: the same move a Reconnect Request naming it
    /// makes, always make-before-break.
    pub(super) fn on_move_request(&mut self, now: Instant, server: &str) {
        match self.url.resolve_reconnect(server) {
            Ok(target) => {
                log::info!("switching server on request: {target}");
                let moving = self.migration.is_some();
                self.start_migration(now, Cause::UserRequest, target);
                // Only a move this request started becomes make-before-break: one already
                // under way may have left its old connection (a refused standby falls back
                // to break-before-make) and has nothing to stand by for.
                if let Some(m) = self.migration.as_mut().filter(|_| !moving) {
                    if m.break_before_make {
                        m.break_before_make = false;
                        self.start_connecting(Purpose::Standby);
                    }
                }
            }
            Err(error) => log::warn!("cannot switch to the requested server: {error}"),
        }
    }

    /// Where a Reconnect Request's tcUrl (if any) points, or the current server.
    pub(super) fn reconnect_target(&self, tc_url: Option<&str>) -> RtmpUrl {
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

    pub(super) fn start_migration(&mut self, now: Instant, cause: Cause, target: RtmpUrl) {
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
        self.key_waits = 0;
        if !break_before_make {
            self.start_connecting(Purpose::Standby);
        }
    }
}
