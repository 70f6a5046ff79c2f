//! Frame-by-frame comparison of what was sent with what a server recorded: the proof that
//! a move lost and duplicated nothing.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::{Tag, TagKind};

/// The identity of a frame: track, timestamp and a hash of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameId {
    /// Audio or video.
    pub kind: TagKind,
    /// Decode timestamp (ms).
    pub timestamp: u32,
    /// Hash of the tag body.
    pub hash: u64,
}

impl FrameId {
    /// The identity of `tag`, if it is a frame.
    pub fn of(tag: &Tag) -> Option<Self> {
        tag.is_frame().then(|| {
            let mut hasher = DefaultHasher::new();
            tag.data.hash(&mut hasher);
            Self {
                kind: tag.kind,
                timestamp: tag.timestamp,
                hash: hasher.finish(),
            }
        })
    }
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Frames in the input.
    pub sent: u64,
    /// Frames in the recording.
    pub received: u64,
    /// Input frames missing from the recording.
    pub lost: u64,
    /// Recorded frames beyond the input's count of the same frame.
    pub duplicated: u64,
    /// Recorded frames that do not come from the input at all.
    pub foreign: u64,
    /// Whether the recorded frames appear in input order.
    pub in_order: bool,
}

impl Comparison {
    /// Nothing lost, duplicated, invented or reordered.
    pub fn is_lossless(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.foreign == 0 && self.in_order
    }
}

/// Compares input frames with recorded frames (headers and metadata are ignored).
pub fn compare<'a>(
    input: impl IntoIterator<Item = &'a Tag>,
    recorded: impl IntoIterator<Item = &'a Tag>,
) -> Comparison {
    let sent: Vec<FrameId> = input.into_iter().filter_map(FrameId::of).collect();
    let got: Vec<FrameId> = recorded.into_iter().filter_map(FrameId::of).collect();
    let mut expected: HashMap<FrameId, (i64, usize)> = HashMap::new();
    for (index, id) in sent.iter().enumerate() {
        let entry = expected.entry(*id).or_insert((0, index));
        entry.0 += 1;
    }
    let mut result = Comparison {
        sent: sent.len() as u64,
        received: got.len() as u64,
        in_order: true,
        ..Comparison::default()
    };
    let mut last_index = None;
    for id in &got {
        match expected.get_mut(id) {
            None => result.foreign += 1,
            Some((remaining, index)) => {
                *remaining -= 1;
                if *remaining < 0 {
                    result.duplicated += 1;
                }
                if last_index.is_some_and(|last| *index < last) {
                    result.in_order = false;
                }
                last_index = Some(*index);
            }
        }
    }
    result.lost = expected
        .values()
        .map(|(remaining, _)| remaining.max(&0))
        .sum::<i64>() as u64;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frames(list: &[(u32, u8)]) -> Vec<Tag> {
        list.iter()
            .map(|&(ts, b)| Tag::video(ts, Bytes::from(vec![0x27, 1, 0, 0, 0, b])))
            .collect()
    }

    #[test]
    fn counts_loss_duplicates_and_order() {
        let input = frames(&[(0, 1), (33, 2), (66, 3)]);
        assert!(compare(&input, &input).is_lossless());
        let lost = compare(&input, &frames(&[(0, 1), (66, 3)]));
        assert_eq!((lost.lost, lost.duplicated), (1, 0));
        let dup = compare(&input, &frames(&[(0, 1), (33, 2), (33, 2), (66, 3)]));
        assert_eq!((dup.lost, dup.duplicated), (0, 1));
        assert!(!compare(&input, &frames(&[(33, 2), (0, 1), (66, 3)])).in_order);
        let corrupt = compare(&input, &frames(&[(0, 1), (33, 9), (66, 3)]));
        assert_eq!((corrupt.lost, corrupt.foreign), (1, 1));
        assert!(!corrupt.is_lossless());
    }
}
