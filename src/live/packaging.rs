//! Encoder packets to RTMP tags, on the session's side of the channel: timestamps in
//! milliseconds from the first video frame, `onMetaData` and the codec headers before the
//! first frame, each frame packaged as OBS's flv-mux does.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{CodecHeaders, EncodedPacket, MediaKind, StreamSetup, VodFormat};
use crate::media::{packager, Tag, TagKind, VideoCodec};
use crate::protocol::amf0::{self, Value};

/// Turns one stream's encoder packets into tags.
pub(crate) struct Packager {
    setup: StreamSetup,
    /// Where the codec headers come from when the first packet is packaged.
    codec_headers: Option<Box<dyn CodecHeaders>>,
    /// dts (ms) of the first video packet: time zero of the stream.
    origin_ms: Option<i64>,
    headers_sent: bool,
}

impl Packager {
    pub(crate) fn new(setup: StreamSetup, codec_headers: Option<Box<dyn CodecHeaders>>) -> Self {
        Self {
            setup,
            codec_headers,
            origin_ms: None,
            headers_sent: false,
        }
    }

    /// Packages `packet` into `out` (several tags for the first one).
    pub(crate) fn package(&mut self, packet: &EncodedPacket, out: &mut VecDeque<Tag>) {
        let has_video = self.setup.video.is_some();
        let origin = match (self.origin_ms, packet.kind) {
            (Some(origin), _) => origin,
            // Audio before the first video frame has nothing to play against.
            (None, MediaKind::Audio) if has_video => return,
            (None, _) => *self.origin_ms.insert(packet.dts_ms()),
        };
        let dts = (packet.dts_ms() - origin).max(0);
        if !self.headers_sent {
            self.headers_sent = true;
            self.headers(out);
        }
        match (packet.kind, &self.setup.video) {
            (MediaKind::Video, Some(video)) => {
                let pts = packet.pts_ms() - origin;
                out.push_back(packager::video_frame(
                    video.codec,
                    &packet.data,
                    pts,
                    dts,
                    packet.keyframe,
                ));
            }
            (MediaKind::Video, None) => {}
            (MediaKind::Audio, _) if packet.track == 0 => {
                out.push_back(packager::audio_frame(&packet.data, dts));
            }
            (MediaKind::Audio, _) => {
                if let Some(vod) = &self.setup.vod {
                    out.push_back(vod_tag(vod.format, &packet.data, dts, false));
                }
            }
        }
    }

    fn headers(&mut self, out: &mut VecDeque<Tag>) {
        if let Some(source) = &mut self.codec_headers {
            if let (Some(video), Some(data)) = (&mut self.setup.video, source.video()) {
                video.extradata = data;
            }
            if let (Some(audio), Some(data)) = (&mut self.setup.audio, source.audio()) {
                audio.extradata = data;
            }
            if let (Some(vod), Some(data)) = (&mut self.setup.vod, source.vod_audio()) {
                vod.audio.extradata = data;
            }
        }
        out.push_back(Tag {
            kind: TagKind::Script,
            timestamp: 0,
            data: self.metadata(),
        });
        if self.setup.vod.as_ref().map(|vod| vod.format) == Some(VodFormat::AdditionalMedia) {
            out.push_back(Tag {
                kind: TagKind::Script,
                timestamp: 0,
                data: expect_additional_media(),
            });
        }
        if let Some(video) = &self.setup.video {
            match packager::video_sequence_header(video.codec, &video.extradata, 0) {
                Ok(tag) => out.push_back(tag),
                // Players cannot decode without it; say why, keep streaming what we can.
                Err(error) => log::error!("no video sequence header: {error}"),
            }
        }
        if let Some(audio) = &self.setup.audio {
            out.push_back(packager::audio_sequence_header(&audio.extradata, 0));
        }
        if let Some(vod) = &self.setup.vod {
            out.push_back(vod_tag(vod.format, &vod.audio.extradata, 0, true));
        }
    }

    /// `onMetaData`, with the fields OBS's flv-mux writes.
    fn metadata(&self) -> Bytes {
        let mut fields = vec![
            ("duration".to_string(), Value::Number(0.0)),
            ("fileSize".to_string(), Value::Number(0.0)),
        ];
        let mut number =
            |name: &str, value: f64| fields.push((name.to_string(), Value::Number(value)));
        if let Some(video) = &self.setup.video {
            number("width", f64::from(video.width));
            number("height", f64::from(video.height));
            number("videocodecid", codec_id(video.codec));
            number("videodatarate", f64::from(video.bitrate_kbps));
            number("framerate", video.fps);
        }
        if let Some(audio) = &self.setup.audio {
            number("audiocodecid", 10.0);
            number("audiodatarate", f64::from(audio.bitrate_kbps));
            number("audiosamplerate", f64::from(audio.sample_rate));
            number("audiosamplesize", 16.0);
            number("audiochannels", f64::from(audio.channels));
            fields.push(("stereo".into(), Value::Boolean(audio.channels == 2)));
        }
        fields.push(("encoder".into(), Value::String(self.setup.encoder.clone())));
        Bytes::from(amf0::encode_all(&[
            Value::String("onMetaData".into()),
            Value::EcmaArray(fields),
        ]))
    }
}

/// One packet of the VOD track (`header`: its AudioSpecificConfig), as `format` has it.
fn vod_tag(format: VodFormat, payload: &[u8], dts: i64, header: bool) -> Tag {
    match format {
        VodFormat::Multitrack => packager::multitrack_audio(1, payload, dts, header),
        VodFormat::AdditionalMedia => packager::additional_media(payload, dts, header),
    }
}

/// OBS 29's announcement of its VOD track, sent after `onMetaData`: one additional audio
/// stream, "stream0", labelled as narration (PNAR) next to the main audio (PRM), for
/// archiving.
fn expect_additional_media() -> Bytes {
    let object = |fields: Vec<(&str, Value)>| {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    };
    let label = |content_type: &str| {
        object(vec![(
            "contentType",
            Value::String(content_type.to_owned()),
        )])
    };
    Bytes::from(amf0::encode_all(&[
        Value::String("onExpectAdditionalMedia".into()),
        object(vec![
            (
                "processingIntents",
                Value::StrictArray(vec![Value::String("ArchiveProgramNarrationAudio".into())]),
            ),
            (
                "additionalMedia",
                object(vec![(
                    "stream0",
                    object(vec![
                        ("type", Value::Number(8.0)),
                        ("mediaLabels", label("PNAR")),
                    ]),
                )]),
            ),
            (
                "defaultMedia",
                object(vec![("audio", object(vec![("mediaLabels", label("PRM"))]))]),
            ),
        ]),
    ]))
}

/// `videocodecid`: 7 for H.264, the FourCC as a number for Enhanced RTMP codecs.
fn codec_id(codec: VideoCodec) -> f64 {
    match codec {
        VideoCodec::H264 => 7.0,
        other => {
            let fourcc: [u8; 4] = other.fourcc().as_bytes().try_into().unwrap_or_default();
            f64::from(u32::from_be_bytes(fourcc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{AudioSetup, VideoSetup};
    use crate::media::Slot;

    const SPS_PPS: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e, 0xe8, 0x80, 0, 0, 0, 1, 0x68, 0xeb, 0xef, 0x20,
    ];

    fn setup() -> StreamSetup {
        StreamSetup {
            video: Some(VideoSetup {
                codec: VideoCodec::H264,
                extradata: SPS_PPS.to_vec(),
                width: 320,
                height: 240,
                fps: 30.0,
                bitrate_kbps: 1000,
            }),
            audio: Some(AudioSetup {
                extradata: vec![0x11, 0x90],
                sample_rate: 48000,
                channels: 2,
                bitrate_kbps: 128,
            }),
            vod: None,
            encoder: "test".into(),
        }
    }

    fn packet(kind: MediaKind, pts: i64, dts: i64, keyframe: bool) -> EncodedPacket {
        EncodedPacket {
            kind,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
            pts,
            dts,
            timebase_num: 1,
            timebase_den: 30,
            keyframe,
            sys_dts_usec: 0,
            track: 0,
        }
    }

    #[test]
    fn first_video_frame_brings_metadata_and_headers_at_time_zero() {
        let mut packager = Packager::new(setup(), None);
        let mut out = VecDeque::new();
        packager.package(&packet(MediaKind::Audio, -5, -5, true), &mut out);
        assert!(
            out.is_empty(),
            "audio before the first video frame is dropped"
        );
        packager.package(&packet(MediaKind::Video, 0, -2, true), &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].kind, TagKind::Script);
        let meta = Value::decode_all(&out[0].data).unwrap();
        assert_eq!(meta[1].get("width").and_then(Value::as_number), Some(320.0));
        assert_eq!(
            meta[1].get("videocodecid").and_then(Value::as_number),
            Some(7.0)
        );
        assert!(out[1].is_sequence_header() && out[1].kind == TagKind::Video);
        assert!(out[2].is_sequence_header() && out[2].kind == TagKind::Audio);
        assert!(out[3].is_keyframe());
        assert_eq!(out[3].timestamp, 0);
        // Composition time: pts 0 - dts -2 frames = 66 ms.
        assert_eq!(&out[3].data[2..5], &[0, 0, 66]);
    }

    #[test]
    fn later_packets_are_timed_from_the_first_video_frame() {
        let mut packager = Packager::new(setup(), None);
        let mut out = VecDeque::new();
        packager.package(&packet(MediaKind::Video, 30, 30, true), &mut out);
        out.clear();
        packager.package(&packet(MediaKind::Audio, 60, 60, true), &mut out);
        packager.package(&packet(MediaKind::Video, 33, 31, false), &mut out);
        assert_eq!(out[0].timestamp, 1000);
        assert_eq!(out[0].kind, TagKind::Audio);
        assert_eq!(out[1].timestamp, 33);
        assert!(!out[1].is_keyframe());
    }

    #[test]
    fn the_vod_track_goes_as_this_obs_version_sends_it() {
        for (format, expected) in [
            (VodFormat::Multitrack, TagKind::Audio),
            (VodFormat::AdditionalMedia, TagKind::Script),
        ] {
            let mut setup = setup();
            setup.vod = Some(crate::live::VodTrack {
                audio: setup.audio.clone().unwrap(),
                format,
            });
            let mut packager = Packager::new(setup, None);
            let mut out = VecDeque::new();
            packager.package(&packet(MediaKind::Video, 0, 0, true), &mut out);
            let headers: Vec<_> = out.iter().map(Tag::slot).collect();
            let announced = format == VodFormat::AdditionalMedia;
            assert_eq!(
                headers.contains(&Slot::AdditionalMediaAnnouncement),
                announced
            );
            assert!(
                headers.contains(&Slot::Audio(1)),
                "{format:?}: no VOD header"
            );
            out.clear();
            let mut vod = packet(MediaKind::Audio, 30, 30, true);
            vod.track = 1;
            packager.package(&vod, &mut out);
            assert_eq!(out[0].kind, expected);
            assert!(out[0].is_frame() && out[0].slot() == Slot::Audio(1));
            assert_eq!(out[0].timestamp, 1000);
        }
    }

    #[test]
    fn enhanced_codecs_name_their_fourcc_in_metadata() {
        assert_eq!(
            codec_id(VideoCodec::Av1),
            f64::from(u32::from_be_bytes(*b"av01"))
        );
    }

    /// An encoder that knows its parameter sets only once it encoded its first keyframe.
    struct AtFirstKeyframe(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl CodecHeaders for AtFirstKeyframe {
        fn video(&mut self) -> Option<Vec<u8>> {
            self.0
                .load(std::sync::atomic::Ordering::SeqCst)
                .then(|| SPS_PPS.to_vec())
        }
        fn audio(&mut self) -> Option<Vec<u8>> {
            Some(vec![0x12, 0x10])
        }
    }

    #[test]
    fn codec_headers_are_read_when_the_first_packet_is_packaged() {
        let mut setup = setup();
        for extradata in [
            &mut setup.video.as_mut().unwrap().extradata,
            &mut setup.audio.as_mut().unwrap().extradata,
        ] {
            extradata.clear();
        }
        let encoded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut packager = Packager::new(
            setup,
            Some(Box::new(AtFirstKeyframe(std::sync::Arc::clone(&encoded)))),
        );
        // The stream starts; the encoder then produces its first keyframe, and only now
        // has its headers.
        encoded.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut out = VecDeque::new();
        packager.package(&packet(MediaKind::Video, 0, 0, true), &mut out);
        let expected = packager::video_sequence_header(VideoCodec::H264, SPS_PPS, 0).unwrap();
        assert_eq!(out[1].data, expected.data, "no video sequence header");
        assert_eq!(&out[2].data[..], &[0xaf, 0, 0x12, 0x10]);
    }
}
