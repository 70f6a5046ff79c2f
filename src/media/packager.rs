//! Turns encoder output (what OBS's encoders hand over) into RTMP tags, the way OBS's own
//! flv-mux does: legacy FLV for H.264 and AAC, Enhanced RTMP for HEVC and AV1.

use bytes::{BufMut, BytesMut};

use super::{aac, annexb, av1, avc, hevc, MediaError, Tag};

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

#[cfg(test)]
mod tests {
    use super::*;

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
