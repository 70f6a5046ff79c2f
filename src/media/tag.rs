//! The unit of media that flows through obs-goaway: one FLV tag body with its timestamp.
//!
//! RTMP media messages are FLV tag bodies, so the FLV reader, the encoder packagers and the
//! publisher all speak this one type, and a payload is never re-encoded on its way out.

use bytes::Bytes;

/// What an FLV tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    /// Audio (FLV tag type 8, RTMP message type 8).
    Audio,
    /// Video (9).
    Video,
    /// Script data, i.e. `onMetaData` (18).
    Script,
}

impl TagKind {
    /// The FLV tag type, which is also the RTMP message type id.
    pub fn type_id(self) -> u8 {
        match self {
            Self::Audio => 8,
            Self::Video => 9,
            Self::Script => 18,
        }
    }

    /// The kind for an FLV tag type / RTMP message type id.
    pub fn from_type_id(type_id: u8) -> Option<Self> {
        match type_id {
            8 => Some(Self::Audio),
            9 => Some(Self::Video),
            18 => Some(Self::Script),
            _ => None,
        }
    }
}

/// One tag: kind, decode timestamp in milliseconds and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script.
    pub kind: TagKind,
    /// Decode timestamp (dts) in milliseconds.
    pub timestamp: u32,
    /// The tag body exactly as it goes into an RTMP message.
    pub data: Bytes,
}

/// Enhanced RTMP video packet types that start or configure a stream rather than carry a frame.
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_MPEG2TS_SEQUENCE_START: u8 = 5;
/// Legacy codec ids whose second byte is an AVCPacketType-style packet type.
const AVC: u8 = 7;
const LEGACY_HEVC: u8 = 12;
/// AAC sound format and the Enhanced RTMP audio ExHeader marker.
const AAC: u8 = 10;
const EX_AUDIO: u8 = 9;
/// Enhanced RTMP AudioPacketType.Multitrack: the packet type of the track follows.
const EX_AUDIO_MULTITRACK: u8 = 5;
/// Where a one-track multitrack audio tag names its track: after the two type bytes and
/// the FourCC.
const MULTITRACK_TRACK_ID: usize = 6;

/// How OBS 29's `additionalMedia` script tags start (the AMF0 string naming them): its
/// Twitch VOD track, one AAC tag body per tag.
pub const ADDITIONAL_MEDIA: &[u8] = b"\x02\x00\x0fadditionalMedia";
/// What follows [`ADDITIONAL_MEDIA`] up to the AAC tag body's length: `{id: "stream0",
/// media: <AMF3 ByteArray>`.
pub(crate) const ADDITIONAL_MEDIA_OBJECT: &[u8] =
    b"\x03\x00\x02id\x02\x00\x07stream0\x00\x05media\x11\x0c";
/// How OBS 29's announcement of its additional media starts (`onExpectAdditionalMedia`).
const EXPECT_ADDITIONAL_MEDIA: &[u8] = b"\x02\x00\x17onExpectAdditionalMedia";

/// Which elementary stream of the FLV stream a tag belongs to: a new connection needs the
/// header of each, and frames are in order within each. Ordered as headers are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// `onMetaData` (and any other script data).
    Metadata,
    /// OBS 29's `onExpectAdditionalMedia`, announcing its VOD track.
    AdditionalMediaAnnouncement,
    /// The video.
    Video,
    /// Audio track `n`: 0 the main track; others Enhanced RTMP multitrack audio, or OBS 29's
    /// `additionalMedia` (track 1, the Twitch VOD track).
    Audio(u8),
}

impl Tag {
    /// A video tag.
    pub fn video(timestamp: u32, data: Bytes) -> Self {
        Self {
            kind: TagKind::Video,
            timestamp,
            data,
        }
    }

    /// An audio tag.
    pub fn audio(timestamp: u32, data: Bytes) -> Self {
        Self {
            kind: TagKind::Audio,
            timestamp,
            data,
        }
    }

    /// Whether this is a video keyframe (a point a new connection can start from).
    pub fn is_keyframe(&self) -> bool {
        self.kind == TagKind::Video && self.is_frame() && self.video_frame_type() == Some(1)
    }

    /// Whether this is a codec configuration record (AVC/HEVC/AV1 config, AAC
    /// AudioSpecificConfig, on any audio track) that a decoder needs before any frame.
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            TagKind::Video => matches!(
                self.video_packet_type(),
                Some(EX_SEQUENCE_START | EX_MPEG2TS_SEQUENCE_START)
            ),
            TagKind::Audio => self.audio_packet_type() == Some(0),
            TagKind::Script => self.additional_media_packet_type() == Some(0),
        }
    }

    /// The elementary stream this tag belongs to.
    pub fn slot(&self) -> Slot {
        match self.kind {
            TagKind::Video => Slot::Video,
            TagKind::Audio => Slot::Audio(self.audio_track()),
            TagKind::Script if self.data.starts_with(ADDITIONAL_MEDIA) => Slot::Audio(1),
            TagKind::Script if self.data.starts_with(EXPECT_ADDITIONAL_MEDIA) => {
                Slot::AdditionalMediaAnnouncement
            }
            TagKind::Script => Slot::Metadata,
        }
    }

    /// Whether a new connection needs this tag before any frame: the latest of each slot's
    /// (script data, codec configuration records).
    pub fn is_header(&self) -> bool {
        match self.kind {
            TagKind::Script => !self.is_frame(),
            _ => self.is_sequence_header(),
        }
    }

    /// Whether this is an audio or video frame: what a viewer sees or hears, and what loss
    /// and duplicate counts are about.
    pub fn is_frame(&self) -> bool {
        match self.kind {
            TagKind::Video => match self.video_packet_type() {
                Some(EX_CODED_FRAMES | EX_CODED_FRAMES_X) => true,
                Some(_) => false,
                // Legacy codecs without a packet type (VP6, Sorenson): every tag is a frame.
                None => self.data.len() > 1 && self.video_frame_type() != Some(5),
            },
            TagKind::Audio => match self.audio_packet_type() {
                Some(kind) => kind == 1,
                None => !self.data.is_empty(),
            },
            TagKind::Script => self.additional_media_packet_type() == Some(1),
        }
    }

    fn video_frame_type(&self) -> Option<u8> {
        let first = *self.data.first()?;
        Some(if first & 0x80 != 0 {
            (first >> 4) & 0x07
        } else {
            first >> 4
        })
    }

    /// The packet type: Enhanced RTMP's VideoPacketType, or the legacy AVC/HEVC packet type
    /// mapped onto it (0 header, 1 frames, 2 end of sequence).
    fn video_packet_type(&self) -> Option<u8> {
        let first = *self.data.first()?;
        if first & 0x80 != 0 {
            return Some(first & 0x0f);
        }
        if matches!(first & 0x0f, AVC | LEGACY_HEVC) {
            return Some(match *self.data.get(1)? {
                0 => EX_SEQUENCE_START,
                1 => EX_CODED_FRAMES,
                _ => 2,
            });
        }
        None
    }

    fn audio_packet_type(&self) -> Option<u8> {
        let first = *self.data.first()?;
        match (first >> 4, first & 0x0f) {
            (AAC, _) => self.data.get(1).copied(),
            (EX_AUDIO, EX_AUDIO_MULTITRACK) => Some(self.data.get(1)? & 0x0f),
            (EX_AUDIO, packet_type) => Some(packet_type),
            _ => None,
        }
    }

    /// The audio track: the multitrack track id, 0 for plain audio.
    fn audio_track(&self) -> u8 {
        match self.data.first() {
            Some(&first) if first >> 4 == EX_AUDIO && first & 0x0f == EX_AUDIO_MULTITRACK => {
                self.data.get(MULTITRACK_TRACK_ID).copied().unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The AAC packet type of an OBS 29 `additionalMedia` tag (0 header, 1 frame).
    fn additional_media_packet_type(&self) -> Option<u8> {
        let rest = self
            .data
            .strip_prefix(ADDITIONAL_MEDIA)?
            .strip_prefix(ADDITIONAL_MEDIA_OBJECT)?;
        // The ByteArray's length: an AMF3 U29, one to four bytes, the first three with
        // their high bit set when more follow.
        let continued = rest.iter().take(3).take_while(|&&b| b & 0x80 != 0).count();
        let body = rest.get(continued + 1..)?;
        (*body.first()? >> 4 == AAC).then_some(*body.get(1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &'static [u8]) -> Tag {
        Tag::video(0, Bytes::from_static(bytes))
    }

    #[test]
    fn classifies_legacy_avc() {
        assert!(video(&[0x17, 0, 0, 0, 0, 1]).is_sequence_header());
        assert!(!video(&[0x17, 0, 0, 0, 0, 1]).is_keyframe());
        assert!(video(&[0x17, 1, 0, 0, 0, 1]).is_keyframe());
        assert!(video(&[0x27, 1, 0, 0, 0, 1]).is_frame());
        assert!(!video(&[0x27, 1, 0, 0, 0, 1]).is_keyframe());
        assert!(!video(&[0x17, 2, 0, 0, 0]).is_frame(), "end of sequence");
    }

    #[test]
    fn classifies_enhanced_rtmp_video() {
        assert!(video(b"\x90hvc1").is_sequence_header());
        assert!(video(b"\x91hvc1\0\0\0").is_keyframe());
        assert!(video(b"\xa3av01").is_frame());
        assert!(!video(b"\xa3av01").is_keyframe());
        assert!(!video(b"\x94hvc1").is_frame(), "metadata packet");
    }

    #[test]
    fn classifies_multitrack_audio_by_track() {
        let header = Tag::audio(0, Bytes::from_static(b"\x95\x00mp4a\x01\x12\x10"));
        let frame = Tag::audio(0, Bytes::from_static(b"\x95\x01mp4a\x01\x21"));
        assert!(header.is_sequence_header() && header.is_header());
        assert!(frame.is_frame() && !frame.is_header());
        assert_eq!(frame.slot(), Slot::Audio(1));
        assert_eq!(
            Tag::audio(0, Bytes::from_static(&[0xaf, 1, 0x21])).slot(),
            Slot::Audio(0)
        );
    }

    #[test]
    fn classifies_obs_29_additional_media() {
        let mut body = ADDITIONAL_MEDIA.to_vec();
        body.extend_from_slice(ADDITIONAL_MEDIA_OBJECT);
        // A 200-byte ByteArray: U29 (200 << 1 | 1) takes two bytes.
        body.extend_from_slice(&[0x83, 0x11, 0xaf, 1, 0x21, 0, 0, 9]);
        let frame = Tag {
            kind: TagKind::Script,
            timestamp: 0,
            data: body.into(),
        };
        assert!(frame.is_frame() && !frame.is_header());
        assert_eq!(frame.slot(), Slot::Audio(1));
        let announcement = Tag {
            kind: TagKind::Script,
            timestamp: 0,
            data: Bytes::from_static(b"\x02\x00\x17onExpectAdditionalMedia\x03"),
        };
        assert!(announcement.is_header() && !announcement.is_frame());
        assert_eq!(announcement.slot(), Slot::AdditionalMediaAnnouncement);
        let metadata = Tag {
            kind: TagKind::Script,
            timestamp: 0,
            data: Bytes::from_static(b"\x02\x00\x0aonMetaData"),
        };
        assert!(metadata.is_header() && metadata.slot() == Slot::Metadata);
    }

    #[test]
    fn classifies_aac() {
        assert!(Tag::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])).is_sequence_header());
        assert!(Tag::audio(0, Bytes::from_static(&[0xaf, 1, 0x21])).is_frame());
        assert!(!Tag::audio(0, Bytes::new()).is_frame());
    }
}
