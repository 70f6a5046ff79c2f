//! How much a video frame matters to the frames after it: what a congested live output may
//! drop first, in the four levels OBS uses (`OBS_NAL_PRIORITY_*`).
//!
//! Read from the tag itself (NAL headers), so it works for any producer, and only computed
//! for the few tags looked at while congested.

use super::{Tag, TagKind};

/// OBS's NAL priority levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// No other frame refers to it (non-reference B-frames).
    Disposable = 0,
    /// Referenced rarely.
    Low = 1,
    /// Referenced by later frames (P-frames).
    High = 2,
    /// Keyframes, headers, audio and anything not understood: never dropped.
    Highest = 3,
}

const FRAME_KEY: u8 = 1;
const AVC: u8 = 7;
const EX_HEADER: u8 = 0x80;
const EX_CODED_FRAMES: u8 = 1;
const EX_CODED_FRAMES_X: u8 = 3;

/// The drop priority of a tag.
pub fn priority(tag: &Tag) -> Priority {
    if tag.kind != TagKind::Video || !tag.is_frame() || tag.is_keyframe() {
        return Priority::Highest;
    }
    let data = &tag.data[..];
    let Some(&first) = data.first() else {
        return Priority::Highest;
    };
    if first & EX_HEADER == 0 {
        return match (first & 0x0f, data.get(5..)) {
            (AVC, Some(nals)) => avc_priority(nals),
            _ => Priority::Highest,
        };
    }
    if (first >> 4) & 0x07 == FRAME_KEY {
        return Priority::Highest;
    }
    match (data.get(1..5), first & 0x0f) {
        (Some(b"hvc1"), EX_CODED_FRAMES) => hevc_priority(&data[8.min(data.len())..]),
        (Some(b"hvc1"), EX_CODED_FRAMES_X) => hevc_priority(&data[5..]),
        // AV1 and other codecs: reference structure not read, dropped only with all
        // inter frames.
        _ => Priority::High,
    }
}

/// Iterates the first header byte(s) of 4-byte length-prefixed NAL units.
fn nal_headers(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let length = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let nal = data.get(4..4 + length)?;
        data = &data[4 + length..];
        Some(nal)
    })
}

/// H.264: the highest nal_ref_idc of the frame's slices.
fn avc_priority(nals: &[u8]) -> Priority {
    let mut best = None;
    for nal in nal_headers(nals) {
        let Some(&header) = nal.first() else { continue };
        if matches!(header & 0x1f, 1 | 5) {
            let level = match header >> 5 & 3 {
                0 => Priority::Disposable,
                1 => Priority::Low,
                2 => Priority::High,
                _ => Priority::Highest,
            };
            best = best.max(Some(level));
        }
    }
    best.unwrap_or(Priority::Highest)
}

/// HEVC: sub-layer non-reference pictures (even VCL types below 16) are disposable, other
/// pictures are referenced, random access points are keyframes.
fn hevc_priority(nals: &[u8]) -> Priority {
    let mut best = None;
    for nal in nal_headers(nals) {
        let Some(&header) = nal.first() else { continue };
        let level = match header >> 1 & 0x3f {
            t @ 0..=15 if t % 2 == 0 => Priority::Disposable,
            0..=15 => Priority::High,
            16..=23 => Priority::Highest,
            _ => continue,
        };
        best = best.max(Some(level));
    }
    best.unwrap_or(Priority::Highest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn video(bytes: &[u8]) -> Tag {
        Tag::video(0, Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn h264_priority_is_the_highest_slice_reference_level() {
        let b_frame = video(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x01, 0xaa]);
        assert_eq!(priority(&b_frame), Priority::Disposable);
        let p_frame = video(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0xaa]);
        assert_eq!(priority(&p_frame), Priority::High);
        let sei_then_slice = video(&[
            0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x21, 0xaa,
        ]);
        assert_eq!(priority(&sei_then_slice), Priority::Low);
        let key = video(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0xaa]);
        assert_eq!(priority(&key), Priority::Highest);
    }

    #[test]
    fn truncated_or_foreign_frames_are_never_dropped_first() {
        assert_eq!(
            priority(&video(&[0x27, 1, 0, 0, 0, 0, 0, 9])),
            Priority::Highest
        );
        assert_eq!(
            priority(&Tag::audio(0, Bytes::from_static(&[0xaf, 1, 2]))),
            Priority::Highest
        );
        assert_eq!(priority(&video(&[0x17, 0, 0, 0, 0, 1])), Priority::Highest);
    }

    #[test]
    fn hevc_and_av1_priorities() {
        // CodedFramesX, TRAIL_N (type 0) then TRAIL_R (type 1).
        let trail_n = video(b"\xa3hvc1\0\0\0\x03\x00\x01\xaa");
        assert_eq!(priority(&trail_n), Priority::Disposable);
        let trail_r = video(b"\xa1hvc1\0\0\x21\0\0\0\x03\x02\x01\xaa");
        assert_eq!(priority(&trail_r), Priority::High);
        assert_eq!(priority(&video(b"\xa1av01\x12\x00")), Priority::High);
    }
}
