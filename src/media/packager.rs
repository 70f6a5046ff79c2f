//! Turns encoder output (what OBS's encoders hand over) into RTMP tags, the way OBS's own
//! flv-mux does: legacy FLV for H.264 and AAC, Enhanced RTMP for HEVC and AV1.

use bytes::{BufMut, BytesMut};

use super::tag::{ADDITIONAL_MEDIA, ADDITIONAL_MEDIA_OBJECT};
use super::{aac, annexb, av1, avc, hevc, MediaError, Tag, TagKind};

/// Video codecs the publisher can package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264/AVC, sent as legacy FLV codec id 7.
    H264,
    /// HEVC, sent as Enhanced RTMP `hvc1`.
    Hevc,
    /// AV1, sent as Enhanced RTMP `av01`.
    Av1,
}

impl VideoCodec {
    /// The Enhanced RTMP FourCC, which also goes into `fourCcList` when announced.
    pub fn fourcc(self) -> &'static str {
        match self {
            Self::H264 => "avc1",
            Self::Hevc => "hvc1",
            Self::Av1 => "av01",
        }
    }
}

const FRAME_KEY: u8 = 1;
const FRAME_INTER: u8 = 2;
const EX_HEADER: u8 = 0x80;
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_CODED_FRAMES_X: u8 = 3;
const AVC_CODEC_ID: u8 = 7;

/// Converts a millisecond timestamp to RTMP's 32-bit wrapping one.
fn rtmp_time(ms: i64) -> u32 {
    ms.rem_euclid(1 << 32) as u32
}

/// Composition time offset as FLV's signed 24-bit field, clamped to its range.
fn put_si24(out: &mut BytesMut, value: i64) {
    let clamped = value.clamp(-(1 << 23), (1 << 23) - 1) as i32;
    out.put_slice(&clamped.to_be_bytes()[1..]);
}

/// The video sequence header tag from the encoder's extradata.
pub fn video_sequence_header(
    codec: VideoCodec,
    extradata: &[u8],
    dts_ms: i64,
) -> Result<Tag, MediaError> {
    let mut out = BytesMut::with_capacity(16 + extradata.len());
    let record = match codec {
        VideoCodec::H264 => {
            out.put_slice(&[FRAME_KEY << 4 | AVC_CODEC_ID, 0, 0, 0, 0]);
            avc::decoder_configuration_record(extradata)?
        }
        VideoCodec::Hevc => {
            ex_header(&mut out, codec, FRAME_KEY, EX_SEQUENCE_START);
            hevc::decoder_configuration_record(extradata)?
        }
        VideoCodec::Av1 => {
            ex_header(&mut out, codec, FRAME_KEY, EX_SEQUENCE_START);
            av1::decoder_configuration_record(extradata)?
        }
    };
    out.put_slice(&record);
    Ok(Tag::video(rtmp_time(dts_ms), out.freeze()))
}

fn ex_header(out: &mut BytesMut, codec: VideoCodec, frame_type: u8, packet_type: u8) {
    out.put_u8(EX_HEADER | frame_type << 4 | packet_type);
    out.put_slice(codec.fourcc().as_bytes());
}

/// One encoded video frame as a tag: Annex-B converted to length prefixes for H.264/HEVC,
/// composition time = pts - dts.
pub fn video_frame(
    codec: VideoCodec,
    data: &[u8],
    pts_ms: i64,
    dts_ms: i64,
    keyframe: bool,
) -> Tag {
    let frame_type = if keyframe { FRAME_KEY } else { FRAME_INTER };
    let cts = pts_ms - dts_ms;
    let mut out = BytesMut::with_capacity(16 + data.len());
    match codec {
        VideoCodec::H264 => {
            out.put_u8(frame_type << 4 | AVC_CODEC_ID);
            out.put_u8(1);
            put_si24(&mut out, cts);
            annexb::to_length_prefixed(data, &mut out);
        }
        VideoCodec::Hevc if cts != 0 => {
            ex_header(&mut out, codec, frame_type, EX_CODED_FRAMES);
            put_si24(&mut out, cts);
            annexb::to_length_prefixed(data, &mut out);
        }
        VideoCodec::Hevc => {
            ex_header(&mut out, codec, frame_type, EX_CODED_FRAMES_X);
            annexb::to_length_prefixed(data, &mut out);
        }
        VideoCodec::Av1 => {
            ex_header(&mut out, codec, frame_type, EX_CODED_FRAMES);
            out.put_slice(data);
        }
    }
    Tag::video(rtmp_time(dts_ms), out.freeze())
}

/// The AAC sequence header tag from the encoder's AudioSpecificConfig.
pub fn audio_sequence_header(audio_specific_config: &[u8], dts_ms: i64) -> Tag {
    Tag::audio(
        rtmp_time(dts_ms),
        aac::sequence_header(audio_specific_config),
    )
}

/// One raw AAC frame as a tag.
pub fn audio_frame(data: &[u8], dts_ms: i64) -> Tag {
    Tag::audio(rtmp_time(dts_ms), aac::frame(data))
}

/// An AAC packet of audio track `track` (1 and up) as Enhanced RTMP multitrack audio (one
/// track, FourCC `mp4a`), as OBS 30.2 and later send their extra audio tracks:
/// `sequence_start` for the AudioSpecificConfig, else one raw frame.
pub fn multitrack_audio(track: u8, payload: &[u8], dts_ms: i64, sequence_start: bool) -> Tag {
    const EX_HEADER_MULTITRACK: u8 = 0x90 | 5;
    let mut data = BytesMut::with_capacity(payload.len() + 7);
    // ExHeader with AudioPacketType.Multitrack, then OneTrack (0x00) with the track's own
    // packet type: SequenceStart 0 or CodedFrames 1.
    data.put_u8(EX_HEADER_MULTITRACK);
    data.put_u8(u8::from(!sequence_start));
    data.put_slice(b"mp4a");
    data.put_u8(track);
    data.put_slice(payload);
    Tag::audio(rtmp_time(dts_ms), data.freeze())
}

/// An AAC packet of OBS 29's additional audio stream (its Twitch VOD track) as that
/// version's own output sends it: an `additionalMedia` script tag,
/// `{id: "stream0", media: <AMF3 ByteArray of the AAC tag body>}`.
pub fn additional_media(payload: &[u8], dts_ms: i64, sequence_header: bool) -> Tag {
    let body_len = payload.len() + 2;
    let mut data = BytesMut::with_capacity(body_len + 48);
    data.put_slice(ADDITIONAL_MEDIA);
    data.put_slice(ADDITIONAL_MEDIA_OBJECT);
    put_u29(
        &mut data,
        (u32::try_from(body_len).unwrap_or(U29_MAX >> 1) << 1) | 1,
    );
    data.put_u8(0xaf);
    data.put_u8(u8::from(!sequence_header));
    data.put_slice(payload);
    // AMF0 object end.
    data.put_slice(&[0, 0, 9]);
    Tag {
        kind: TagKind::Script,
        timestamp: rtmp_time(dts_ms),
        data: data.freeze(),
    }
}

/// The largest AMF3 U29 value.
const U29_MAX: u32 = (1 << 29) - 1;

/// An AMF3 U29: seven bits a byte with a continuation bit, eight in a fourth byte.
fn put_u29(out: &mut BytesMut, value: u32) {
    let value = value.min(U29_MAX);
    match value {
        0..=0x7f => out.put_u8(value as u8),
        0x80..=0x3fff => out.put_slice(&[0x80 | (value >> 7) as u8, (value & 0x7f) as u8]),
        0x4000..=0x1f_ffff => out.put_slice(&[
            0x80 | (value >> 14) as u8,
            0x80 | ((value >> 7) & 0x7f) as u8,
            (value & 0x7f) as u8,
        ]),
        _ => out.put_slice(&[
            0x80 | (value >> 22) as u8,
            0x80 | ((value >> 15) & 0x7f) as u8,
            0x80 | ((value >> 8) & 0x7f) as u8,
            (value & 0xff) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Slot;

    #[test]
    fn extra_audio_tracks_are_packaged_per_obs_version() {
        let header = multitrack_audio(1, &[0x12, 0x10], 0, true);
        assert_eq!(&header.data[..], b"\x95\x00mp4a\x01\x12\x10");
        assert!(header.is_sequence_header() && header.slot() == Slot::Audio(1));
        let frame = multitrack_audio(1, &[0x21; 300], 40, false);
        assert!(frame.is_frame() && frame.timestamp == 40);
        let frame = additional_media(&[0x21; 300], 40, false);
        assert!(frame.is_frame() && frame.slot() == Slot::Audio(1));
        // 302 bytes: U29 (302 << 1 | 1) = 0x25d in two bytes.
        let length_at = ADDITIONAL_MEDIA.len() + ADDITIONAL_MEDIA_OBJECT.len();
        assert_eq!(
            &frame.data[length_at..length_at + 4],
            &[0x84, 0x5d, 0xaf, 1]
        );
        assert!(frame.data.ends_with(&[0x21, 0, 0, 9]));
        assert!(additional_media(&[0x12, 0x10], 0, true).is_sequence_header());
    }

    #[test]
    fn u29_takes_one_to_four_bytes() {
        for (value, bytes) in [
            (0x7f, &[0x7f][..]),
            (0x80, &[0x81, 0x00]),
            (0x4000, &[0x81, 0x80, 0x00]),
            (0x20_0000, &[0x80, 0xc0, 0x80, 0x00]),
        ] {
            let mut out = BytesMut::new();
            put_u29(&mut out, value);
            assert_eq!(&out[..], bytes, "{value:#x}");
        }
    }

    #[test]
    fn h264_frames_carry_composition_time_and_lengths() {
        let tag = video_frame(
            VideoCodec::H264,
            &[0, 0, 0, 1, 0x65, 0xaa],
            1066,
            1000,
            true,
        );
        assert!(tag.is_keyframe());
        assert_eq!(tag.timestamp, 1000);
        assert_eq!(&tag.data[..], &[0x17, 1, 0, 0, 66, 0, 0, 0, 2, 0x65, 0xaa]);
        let negative = video_frame(VideoCodec::H264, &[0, 0, 1, 0x41], 990, 1000, false);
        assert_eq!(&negative.data[2..5], &[0xff, 0xff, 0xf6]);
    }

    #[test]
    fn hevc_uses_enhanced_rtmp_headers() {
        let header = video_sequence_header(
            VideoCodec::Hevc,
            include_bytes!("testdata/x265-main-320x240.hevc"),
            0,
        )
        .unwrap();
        assert_eq!(&header.data[..5], b"\x90hvc1");
        assert!(header.is_sequence_header());
        let frame = video_frame(VideoCodec::Hevc, &[0, 0, 1, 0x26, 1], 33, 33, true);
        assert_eq!(
            &frame.data[..5],
            b"\x93hvc1",
            "CodedFramesX when pts == dts"
        );
        assert!(frame.is_keyframe());
        let b_frame = video_frame(VideoCodec::Hevc, &[0, 0, 1, 2, 1], 66, 33, false);
        assert_eq!(&b_frame.data[..8], b"\xa1hvc1\0\0\x21");
    }

    #[test]
    fn av1_frames_are_obus_without_composition_time() {
        let header = video_sequence_header(
            VideoCodec::Av1,
            include_bytes!("testdata/aom-320x240.obu"),
            0,
        )
        .unwrap();
        assert_eq!(&header.data[..6], b"\x90av01\x81");
        let frame = video_frame(VideoCodec::Av1, &[0x12, 0], 0, 0, false);
        assert_eq!(&frame.data[..], b"\xa1av01\x12\x00");
    }

    #[test]
    fn aac_tags_and_negative_timestamps() {
        let tag = audio_frame(&[1, 2], -21);
        assert_eq!(tag.timestamp, u32::MAX - 20);
        assert!(audio_sequence_header(&[0x12, 0x10], 0).is_sequence_header());
    }
}
