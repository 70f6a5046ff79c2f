//! The stream's tags: taking them in (congestion, dynamic bitrate, the buffer limit),
//! sending them on the active link, forgetting what was delivered, finishing.

use std::time::Instant;

use super::super::bitrate::BitrateChange;
use super::super::SessionEvent;
use crate::media::{Tag, TagKind};

use super::*;

/// Ranges of unacknowledged evicted frames remembered separately; beyond, they merge.
const MAX_EVICTED_RANGES: usize = 64;

impl SessionCore {
    pub(super) fn on_tag(&mut self, now: Instant, tag: Tag) {
        self.report.tags_in += 1;
        self.report.frames_in += u64::from(tag.is_frame());
        self.report.bytes_in += tag.data.len() as u64;
        // Without a connection nothing is congested: everything waits for the next one. After
        // a resume the backlog it carries is protected: only media that piles up behind it
        // counts, so catching up never drops frames a lossless resume promised.
        // Nor is a silent path: what it did not deliver goes again on the next connection.
        let judged = self.active.is_some() && !self.path_silent();
        let congestion = self.congestion.as_mut().filter(|_| judged);
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
        if self.cursor < self.buffer.first() {
            // Frames the active link had yet to send are gone: its next video frame may
            // depend on them, so it waits for a keyframe as a link started here would.
            self.cursor = self.buffer.first();
            if let Some(active) = &mut self.active {
                active.needs_keyframe = true;
            }
        }
    }

    pub(super) fn bitrate_changed(&mut self, change: BitrateChange) {
        self.config.handle.set_video_bitrate(change.kbps);
        self.emit(SessionEvent::BitrateChanged(change));
    }

    pub(super) fn on_delivered(&mut self, link: LinkId, upto: u64) {
        if let Some(active) = self.active.as_mut().filter(|a| a.id == link) {
            active.delivered = active.delivered.max(upto);
        }
        if let Some(d) = self.draining.iter_mut().find(|d| d.id == link) {
            d.delivered = d.delivered.max(upto);
        }
    }

    /// The first sequence number some link has not provably delivered (the cursor if all
    /// have).
    pub(super) fn undelivered(&self) -> u64 {
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
    pub(super) fn release(&mut self) {
        let keep = self.undelivered();
        self.buffer.release_before(keep);
        while self.evicted.front().is_some_and(|&(end, _)| end <= keep) {
            self.evicted.pop_front();
        }
        self.config.handle.set_buffer_bytes(self.buffer.bytes());
    }

    /// A link that had not delivered past `delivered` failed: the frames after it that the
    /// buffer limit already dropped cannot be sent again. Returns how many (may be lost).
    pub(super) fn evicted_after(&mut self, delivered: u64) -> u64 {
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
    pub(super) fn maybe_finish(&mut self) {
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

    pub(super) fn send_next(&mut self, now: Instant) {
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
    pub(super) fn next_decodable(&mut self) -> Option<Tag> {
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
}

fn rebased(tag: Tag, offset: u32) -> Tag {
    Tag {
        timestamp: tag.timestamp.wrapping_sub(offset),
        ..tag
    }
}
