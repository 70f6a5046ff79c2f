//! Dropping video when the connection cannot keep up, the way OBS's own RTMP output does,
//! so a live stream stays live instead of falling ever further behind.
//!
//! The queue is the session's unsent tags. When the media waiting there spans more than
//! 700 ms, frames nothing refers to are dropped; past 900 ms, every inter frame, and the
//! following ones too until the next keyframe. Audio, keyframes and codec headers are never
//! dropped, and nothing already sent is touched, so what a move or a resume needs stays.
//!
//! With dynamic bitrate on, OBS drops nothing at all and lowers the encoder's bitrate
//! instead; the queue is still measured, for the status bar and for that decision.

use std::time::Duration;

use super::retained::Retained;
use crate::media::priority::{priority, Priority};
use crate::media::{Tag, TagKind};

/// When to drop what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropThresholds {
    /// Unsent media beyond which unreferenced frames go (OBS: 700 ms).
    pub drop: Duration,
    /// Unsent media beyond which all inter frames go (OBS: 900 ms).
    pub drop_inter: Duration,
}

impl Default for DropThresholds {
    fn default() -> Self {
        Self {
            drop: Duration::from_millis(700),
            drop_inter: Duration::from_millis(900),
        }
    }
}

/// Fewer unsent tags than this is never congestion (OBS's rule).
const MIN_QUEUED: u64 = 5;

/// The dropping state of one session.
#[derive(Debug)]
pub(crate) struct Congestion {
    thresholds: DropThresholds,
    /// False with dynamic bitrate: measure only.
    dropping: bool,
    /// Incoming video below this priority is dropped until a frame reaches it.
    min_priority: Priority,
    /// No new drop before the queue's front passes this timestamp (what was just dropped).
    quiet_until: Option<u32>,
    /// Unsent media over the drop threshold.
    level: f32,
    /// The media span waiting at the last measurement (`None`: too few tags to count).
    waiting: Option<Duration>,
}

impl Congestion {
    /// Drops video past `thresholds`.
    pub(crate) fn dropping(thresholds: DropThresholds) -> Self {
        Self {
            thresholds,
            dropping: true,
            min_priority: Priority::Disposable,
            quiet_until: None,
            level: 0.0,
            waiting: None,
        }
    }

    /// Measures against `thresholds` but drops nothing (dynamic bitrate).
    pub(crate) fn measuring(thresholds: DropThresholds) -> Self {
        Self {
            dropping: false,
            ..Self::dropping(thresholds)
        }
    }

    /// The last measured congestion (0: nothing waiting, 1 and more: dropping).
    pub(crate) fn level(&self) -> f32 {
        self.level
    }

    /// The span of unsent media measured for the last incoming video frame, if enough
    /// tags were waiting to count (OBS's five).
    pub(crate) fn waiting(&self) -> Option<Duration> {
        self.waiting
    }

    /// Called with each incoming tag before it joins the queue: drops queued frames if the
    /// queue is too long, and returns false if `tag` itself is to be dropped. Returns the
    /// number of frames dropped from the queue in `dropped`.
    pub(crate) fn admit(
        &mut self,
        buffer: &mut Retained,
        cursor: u64,
        tag: &Tag,
        dropped: &mut u64,
    ) -> bool {
        if tag.kind != TagKind::Video || !tag.is_frame() {
            return true;
        }
        if !self.dropping {
            self.record(unsent_span(buffer, cursor, tag.timestamp));
            return true;
        }
        for (threshold, level) in [
            (self.thresholds.drop_inter, Priority::Highest),
            (self.thresholds.drop, Priority::High),
        ] {
            *dropped += self.check(buffer, cursor, tag.timestamp, threshold, level);
        }
        let level = priority(tag);
        if level < self.min_priority {
            *dropped += 1;
            return false;
        }
        self.min_priority = Priority::Disposable;
        true
    }

    /// Notes the unsent media span measured for an incoming video frame.
    fn record(&mut self, waiting: Option<u32>) {
        self.level = waiting.map_or(0.0, |w| {
            w as f32 / self.thresholds.drop.as_millis().max(1) as f32
        });
        self.waiting = waiting.map(|w| Duration::from_millis(u64::from(w)));
    }

    fn check(
        &mut self,
        buffer: &mut Retained,
        cursor: u64,
        now_ts: u32,
        threshold: Duration,
        keep_from: Priority,
    ) -> u64 {
        let waiting = unsent_span(buffer, cursor, now_ts);
        if keep_from == Priority::High {
            self.record(waiting);
        }
        let (Some(waiting), Some(front)) = (waiting, buffer.get(cursor).map(|t| t.timestamp))
        else {
            return 0;
        };
        if self
            .quiet_until
            .is_some_and(|t| front.wrapping_sub(t) > u32::MAX / 2)
        {
            return 0;
        }
        if u128::from(waiting) <= threshold.as_millis() {
            return 0;
        }
        let dropped = buffer.drop_unsent(cursor, |t| {
            t.kind != TagKind::Video || !t.is_frame() || priority(t) >= keep_from
        });
        log::debug!(
            "congestion: {waiting} ms unsent, dropped {dropped} frames below {keep_from:?}"
        );
        self.min_priority = self.min_priority.max(keep_from);
        self.quiet_until = Some(now_ts);
        dropped
    }
}

/// How much media (ms, by timestamps) waits unsent from `cursor` up to `now_ts`; `None`
/// with fewer than [`MIN_QUEUED`] tags waiting, or timestamps going backwards.
fn unsent_span(buffer: &Retained, cursor: u64, now_ts: u32) -> Option<u32> {
    let front = buffer.get(cursor)?.timestamp;
    if buffer.end().saturating_sub(cursor) < MIN_QUEUED {
        return None;
    }
    Some(now_ts.wrapping_sub(front)).filter(|&waiting| waiting <= u32::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::BufferLimits;
    use bytes::Bytes;

    fn key(ts: u32) -> Tag {
        Tag::video(
            ts,
            Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 1]),
        )
    }
    fn p(ts: u32) -> Tag {
        Tag::video(
            ts,
            Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 1]),
        )
    }
    fn b(ts: u32) -> Tag {
        Tag::video(
            ts,
            Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x01, 1]),
        )
    }
    fn audio(ts: u32) -> Tag {
        Tag::audio(ts, Bytes::from_static(&[0xaf, 1, 7]))
    }

    /// Feeds `tags` through the policy into a buffer nothing is sent from.
    fn feed(tags: impl IntoIterator<Item = Tag>) -> (Retained, Congestion, u64) {
        let mut buffer = Retained::new(BufferLimits::default());
        let mut congestion = Congestion::dropping(DropThresholds::default());
        let mut dropped = 0;
        for tag in tags {
            if congestion.admit(&mut buffer, 0, &tag, &mut dropped) {
                buffer.push(tag);
            }
        }
        (buffer, congestion, dropped)
    }

    fn gop(start: u32) -> Vec<Tag> {
        let mut tags = vec![key(start), audio(start)];
        for i in 1..30 {
            let ts = start + i * 33;
            tags.push(if i % 3 == 0 { p(ts) } else { b(ts) });
            tags.push(audio(ts));
        }
        tags
    }

    #[test]
    fn a_short_queue_drops_nothing() {
        let (buffer, congestion, dropped) = feed(gop(0).into_iter().take(40));
        assert_eq!(dropped, 0);
        assert_eq!(buffer.end(), 40);
        assert!(congestion.level() > 0.5 && congestion.level() < 1.0);
    }

    #[test]
    fn past_700_ms_unreferenced_frames_go_until_a_referenced_one() {
        let tags: Vec<Tag> = gop(0).into_iter().take(48).collect(); // up to 759 ms
        let (buffer, congestion, dropped) = feed(tags);
        let kept: Vec<&Tag> = (0..buffer.end()).filter_map(|s| buffer.get(s)).collect();
        let b_frames = kept.iter().filter(|t| priority(t) < Priority::High).count();
        assert_eq!(b_frames, 0, "every unsent B-frame went");
        assert_eq!(dropped, 16, "16 B-frames up to 759 ms");
        assert_eq!(kept.iter().filter(|t| t.kind == TagKind::Audio).count(), 24);
        assert!(congestion.level() > 1.0);
    }

    #[test]
    fn past_900_ms_every_inter_frame_goes_until_the_next_keyframe() {
        let mut buffer = Retained::new(BufferLimits::default());
        let mut congestion = Congestion::dropping(DropThresholds::default());
        for tag in gop(0) {
            buffer.push(tag); // 0..957 ms, sent nowhere
        }
        let mut dropped = 0;
        assert!(!congestion.admit(&mut buffer, 0, &p(990), &mut dropped));
        assert_eq!(dropped, 30, "29 inter frames queued, then the incoming one");
        assert!(congestion.admit(&mut buffer, 0, &key(1000), &mut dropped));
        let kept: Vec<&Tag> = (0..buffer.end()).filter_map(|s| buffer.get(s)).collect();
        let video: Vec<&&Tag> = kept.iter().filter(|t| t.kind == TagKind::Video).collect();
        assert_eq!(video.len(), 1, "only the keyframe is left");
        assert!(video[0].is_keyframe());
        assert_eq!(
            kept.iter().filter(|t| t.kind == TagKind::Audio).count(),
            30,
            "audio is never dropped"
        );
    }

    #[test]
    fn frames_already_sent_are_never_dropped() {
        let mut buffer = Retained::new(BufferLimits::default());
        let mut congestion = Congestion::dropping(DropThresholds::default());
        let mut dropped = 0;
        let tags = gop(0);
        let sent = tags.len() as u64 - 4;
        for tag in tags {
            buffer.push(tag);
        }
        assert!(congestion.admit(&mut buffer, sent, &p(1000), &mut dropped));
        assert_eq!(dropped, 0);
        assert_eq!(
            congestion.level(),
            0.0,
            "four unsent tags are no congestion"
        );
    }

    #[test]
    fn with_dynamic_bitrate_nothing_is_dropped_but_the_queue_is_measured() {
        let mut buffer = Retained::new(BufferLimits::default());
        let mut congestion = Congestion::measuring(DropThresholds::default());
        let mut dropped = 0;
        for tag in gop(0) {
            // 0..957 ms, sent nowhere: past both thresholds.
            assert!(congestion.admit(&mut buffer, 0, &tag, &mut dropped));
            buffer.push(tag);
        }
        assert!(congestion.admit(&mut buffer, 0, &b(990), &mut dropped));
        assert_eq!(dropped, 0);
        assert_eq!(congestion.waiting(), Some(Duration::from_millis(990)));
        assert!(congestion.level() > 1.4);
        let sent = buffer.end() - 3;
        assert!(congestion.admit(&mut buffer, sent, &b(1023), &mut dropped));
        assert_eq!(
            congestion.waiting(),
            None,
            "three unsent tags are not counted"
        );
    }
}
