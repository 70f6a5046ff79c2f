//! The session's memory of the stream: every tag from the last point a new connection could
//! resume from, numbered by a sequence number that never repeats.
//!
//! Tags leave the front only once the server has provably received everything before the
//! next resume point (or when the configured bound forces whole groups of pictures out).
//! Codec headers and metadata that leave are remembered, so a connection starting at any
//! retained keyframe can be given the headers in force there.

use std::collections::VecDeque;
use std::time::Duration;

use crate::media::{Tag, TagKind};

/// How much media the session may hold for resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Media duration (by timestamps).
    pub max_duration: Duration,
    /// Payload bytes.
    pub max_bytes: usize,
}

impl Default for BufferLimits {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(30),
            max_bytes: 256 << 20,
        }
    }
}

/// Frames [`Retained::enforce_limits`] dropped that the server may not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Never sent: lost.
    pub(crate) unsent: u64,
    /// Sent, not acknowledged: lost if their connection fails, since no resume can reach
    /// back to them.
    pub(crate) unacknowledged: u64,
}

/// Header tags in force at some point of the stream: the latest of each slot (metadata,
/// video, each audio track), in slot order.
#[derive(Debug, Clone, Default)]
struct Headers(Vec<Tag>);

impl Headers {
    fn note(&mut self, tag: &Tag) {
        if !tag.is_header() {
            return;
        }
        let slot = tag.slot();
        match self.0.binary_search_by_key(&slot, Tag::slot) {
            Ok(index) => self.0[index] = tag.clone(),
            Err(index) => self.0.insert(index, tag.clone()),
        }
    }
}

/// The retained tags.
#[derive(Debug)]
pub(crate) struct Retained {
    tags: VecDeque<Tag>,
    first_seq: u64,
    bytes: usize,
    /// Headers of tags that already left the front.
    headers: Headers,
    has_video: bool,
    /// Sequence numbers of the retained resume points, ascending: finding the one before a
    /// tag is a search, not a walk over a group of pictures on every input.
    resume_points: VecDeque<u64>,
    limits: BufferLimits,
    peak_bytes: usize,
}

impl Retained {
    pub(crate) fn new(limits: BufferLimits) -> Self {
        Self {
            tags: VecDeque::new(),
            first_seq: 0,
            bytes: 0,
            headers: Headers::default(),
            has_video: false,
            resume_points: VecDeque::new(),
            limits,
            peak_bytes: 0,
        }
    }

    /// Appends a tag; returns its sequence number.
    pub(crate) fn push(&mut self, tag: Tag) -> u64 {
        if !self.has_video && tag.kind == TagKind::Video {
            // Audio frames stop being resume points.
            self.has_video = true;
            self.resume_points.clear();
        }
        if self.is_resume_point(&tag) {
            self.resume_points.push_back(self.end());
        }
        self.bytes += tag.data.len();
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        self.tags.push_back(tag);
        self.end() - 1
    }

    /// One past the last sequence number.
    pub(crate) fn end(&self) -> u64 {
        self.first_seq + self.tags.len() as u64
    }

    /// The oldest retained sequence number.
    pub(crate) fn first(&self) -> u64 {
        self.first_seq
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&Tag> {
        let index = seq.checked_sub(self.first_seq)?;
        self.tags.get(usize::try_from(index).ok()?)
    }

    /// Whether the stream has video (so only keyframes are resume points).
    pub(crate) fn has_video(&self) -> bool {
        self.has_video
    }

    /// Whether a new connection may start with this tag: a video keyframe, or for a stream
    /// without video, any audio frame.
    pub(crate) fn is_resume_point(&self, tag: &Tag) -> bool {
        if self.has_video {
            tag.is_keyframe()
        } else {
            tag.kind == TagKind::Audio && tag.is_frame()
        }
    }

    /// The latest resume point at or before `seq` (the oldest retained tag if none).
    pub(crate) fn resume_point_at_or_before(&self, seq: u64) -> u64 {
        let last = seq.min(self.end().saturating_sub(1));
        let after = self.resume_points.partition_point(|&s| s <= last);
        after
            .checked_sub(1)
            .and_then(|i| self.resume_points.get(i).copied())
            .unwrap_or(self.first_seq)
    }

    /// Audio and video frames in `[from, to)`.
    pub(crate) fn frames_between(&self, from: u64, to: u64) -> u64 {
        (from.max(self.first_seq)..to.min(self.end()))
            .filter(|&s| self.get(s).is_some_and(Tag::is_frame))
            .count() as u64
    }

    /// Forgets everything before the resume point at or before `seq`: the server has
    /// everything before `seq`.
    pub(crate) fn release_before(&mut self, seq: u64) {
        let keep_from = self.resume_point_at_or_before(seq);
        while self.first_seq < keep_from {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) -> Option<Tag> {
        let tag = self.tags.pop_front()?;
        if self.resume_points.front() == Some(&self.first_seq) {
            self.resume_points.pop_front();
        }
        self.bytes -= tag.data.len();
        self.headers.note(&tag);
        self.first_seq += 1;
        Some(tag)
    }

    /// Removes unsent tags (at or after `cursor`) that `keep` rejects; returns how many
    /// frames went. Safe because no connection has been given a sequence number at or after
    /// the cursor yet.
    pub(crate) fn drop_unsent(&mut self, cursor: u64, mut keep: impl FnMut(&Tag) -> bool) -> u64 {
        let Ok(index) = usize::try_from(cursor.saturating_sub(self.first_seq)) else {
            return 0;
        };
        if index >= self.tags.len() {
            return 0;
        }
        let mut dropped = 0;
        for tag in self.tags.split_off(index) {
            if keep(&tag) {
                self.tags.push_back(tag);
            } else {
                self.bytes -= tag.data.len();
                dropped += u64::from(tag.is_frame());
            }
        }
        // Later tags moved down: number their resume points again.
        while self.resume_points.back().is_some_and(|&s| s >= cursor) {
            self.resume_points.pop_back();
        }
        for seq in cursor..self.end() {
            if self.get(seq).is_some_and(|t| self.is_resume_point(t)) {
                self.resume_points.push_back(seq);
            }
        }
        dropped
    }

    /// Payload bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Enforces the limits by dropping whole groups of pictures from the front; says how
    /// many of the frames dropped were at or after `cursor` (never sent anywhere), and how
    /// many were sent but at or after `delivered` (not known to have arrived).
    pub(crate) fn enforce_limits(&mut self, cursor: u64, delivered: u64) -> Evicted {
        let mut evicted = Evicted::default();
        while self.over_limits() {
            loop {
                let seq = self.first_seq;
                let Some(tag) = self.pop_front() else { break };
                if tag.is_frame() && seq >= cursor {
                    evicted.unsent += 1;
                } else if tag.is_frame() && seq >= delivered {
                    evicted.unacknowledged += 1;
                }
                if self.tags.front().is_none_or(|t| self.is_resume_point(t)) {
                    break;
                }
            }
        }
        evicted
    }

    fn over_limits(&self) -> bool {
        if self.tags.len() < 2 {
            return false;
        }
        let span = self
            .tags
            .back()
            .map(|last| last.timestamp.wrapping_sub(self.tags[0].timestamp))
            .unwrap_or_default();
        self.bytes > self.limits.max_bytes
            || u128::from(span) > self.limits.max_duration.as_millis() && span < u32::MAX / 2
    }

    /// The tags a new connection starting at `seq` needs first: metadata and codec headers
    /// in force there, stamped with that tag's timestamp.
    pub(crate) fn preamble(&self, seq: u64) -> Vec<Tag> {
        let mut headers = self.headers.clone();
        for s in self.first_seq..seq.min(self.end()) {
            if let Some(tag) = self.get(s) {
                headers.note(tag);
            }
        }
        let timestamp = self.get(seq).map_or(0, |t| t.timestamp);
        headers
            .0
            .into_iter()
            .map(|tag| Tag { timestamp, ..tag })
            .collect()
    }

    /// Largest payload size held at once, for the report.
    pub(crate) fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Slot;
    use bytes::Bytes;

    fn key(ts: u32) -> Tag {
        Tag::video(ts, Bytes::from_static(&[0x17, 1, 0, 0, 0, 9]))
    }
    fn inter(ts: u32) -> Tag {
        Tag::video(ts, Bytes::from_static(&[0x27, 1, 0, 0, 0, 9]))
    }
    fn audio(ts: u32) -> Tag {
        Tag::audio(ts, Bytes::from_static(&[0xaf, 1, 5]))
    }
    fn video_header() -> Tag {
        Tag::video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]))
    }

    fn stream(gops: u32) -> Retained {
        let mut r = Retained::new(BufferLimits::default());
        r.push(video_header());
        for g in 0..gops {
            r.push(key(g * 1000));
            r.push(audio(g * 1000 + 10));
            r.push(inter(g * 1000 + 33));
        }
        r
    }

    #[test]
    fn release_keeps_the_group_of_the_first_undelivered_tag() {
        let mut r = stream(3); // seqs: 0 header, 1 K, 2 a, 3 p, 4 K, 5 a, 6 p, 7 K ...
        r.release_before(6);
        assert_eq!(r.first(), 4);
        assert_eq!(r.resume_point_at_or_before(6), 4);
        let preamble = r.preamble(4);
        assert_eq!(preamble.len(), 1, "the released video header is remembered");
        assert!(preamble[0].is_sequence_header());
        assert_eq!(preamble[0].timestamp, 1000);
    }

    #[test]
    fn each_audio_track_keeps_its_own_header() {
        let mut r = Retained::new(BufferLimits::default());
        r.push(Tag::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])));
        r.push(Tag::audio(
            0,
            Bytes::from_static(b"\x95\x00mp4a\x01\x11\x90"),
        ));
        r.push(video_header());
        r.push(key(0));
        r.push(audio(10));
        r.push(key(1000));
        r.release_before(5);
        let preamble = r.preamble(5);
        let slots: Vec<_> = preamble.iter().map(Tag::slot).collect();
        assert_eq!(
            slots,
            [Slot::Video, Slot::Audio(0), Slot::Audio(1)],
            "the VOD track's header is not lost to the main track's"
        );
        assert!(preamble.iter().all(|t| t.timestamp == 1000));
    }

    #[test]
    fn audio_only_streams_resume_at_any_audio_frame() {
        let mut r = Retained::new(BufferLimits::default());
        for ts in 0..5 {
            r.push(audio(ts * 21));
        }
        assert_eq!(r.resume_point_at_or_before(3), 3);
    }

    #[test]
    fn limits_drop_whole_groups_and_count_unsent_frames() {
        let mut r = Retained::new(BufferLimits {
            max_duration: Duration::from_millis(1500),
            max_bytes: usize::MAX,
        });
        for g in 0..3 {
            r.push(key(g * 1000));
            r.push(inter(g * 1000 + 500));
        }
        // Nothing sent yet (cursor 0): the dropped first group is lost.
        assert_eq!(r.enforce_limits(0, 0).unsent, 2);
        assert_eq!(r.first(), 2);
        assert!(r.get(2).unwrap().is_keyframe());
        // Everything already sent: dropping loses nothing, unless it was not acknowledged.
        r.push(key(3000));
        let evicted = r.enforce_limits(100, 3);
        assert_eq!(evicted.unsent, 0);
        assert_eq!(
            evicted.unacknowledged, 1,
            "the frame at 2500 ms was not acknowledged"
        );
        assert_eq!(r.first(), 4);
        assert_eq!(r.frames_between(0, 100), 3);
    }
}
