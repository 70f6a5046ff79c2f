//! The live output the OBS plugin drives, fed like OBS's encoders feed it, on loopback
//! against the reference ingest: congestion drops video as OBS does and recovers.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use obs_goaway::ingest::{Ingest, IngestConfig};
use obs_goaway::live::{
    AudioSetup, EncodedPacket, LiveOutput, MediaKind, Observer, Outcome, StreamSetup, VideoSetup,
};
use obs_goaway::media::{Tag, TagKind, VideoCodec};
use obs_goaway::session::{DropThresholds, SessionConfig, SessionEvent};
use obs_goaway::transport::RtmpUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SPS_PPS: &[u8] = &[
    0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e, 0xe8, 0x80, 0, 0, 0, 1, 0x68, 0xeb, 0xef, 0x20,
];
const FRAME_BYTES: usize = 4000;

/// A relay to the ingest whose client-to-server direction can be slowed to `rate` bytes
/// per second (0: full speed), with buffers small enough for a slow reader to show.
async fn throttled_relay(upstream: SocketAddr, rate: Arc<AtomicU64>) -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let listener = socket.listen(8).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let rate = Arc::clone(&rate);
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let limit = rate.load(Ordering::Relaxed) as usize;
                        let want = if limit == 0 {
                            buf.len()
                        } else {
                            (limit / 20).clamp(1, buf.len())
                        };
                        let n = match cr.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if limit != 0 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                tokio::select! {
                    () = up => {}
                    _ = tokio::io::copy(&mut sr, &mut cw) => {}
                }
            });
        }
    });
    addr
}

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
        encoder: "live_output test".into(),
    }
}

/// The frame types of a group of pictures: I, then P B B repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    I,
    P,
    B,
}

fn frame_type(index: u32) -> Frame {
    match index % 30 {
        0 => Frame::I,
        n if n % 3 == 1 => Frame::P,
        _ => Frame::B,
    }
}

/// Encoded video frame `index` (Annex-B, NAL ref idc by type, the index in the payload).
fn video_packet(index: u32, start: Instant) -> EncodedPacket {
    let kind = frame_type(index);
    let header = match kind {
        Frame::I => 0x65,
        Frame::P => 0x41,
        Frame::B => 0x01,
    };
    let mut data = vec![0, 0, 0, 1, header];
    data.extend_from_slice(&video_index_bytes(index));
    data.resize(FRAME_BYTES, 0xab);
    let ms = i64::from(index) * 1000 / 30;
    EncodedPacket {
        kind: MediaKind::Video,
        data: Bytes::from(data),
        pts: ms,
        dts: ms,
        timebase_num: 1,
        timebase_den: 1000,
        keyframe: kind == Frame::I,
        sys_dts_usec: start.elapsed().as_micros() as i64,
    }
}

/// The index in 7-bit digits with the high bit set: no zero byte, so no start code can
/// appear inside the NAL unit.
fn video_index_bytes(index: u32) -> [u8; 4] {
    [3, 2, 1, 0].map(|digit| 0x80 | ((index >> (7 * digit)) & 0x7f) as u8)
}

fn audio_packet(index: u32, start: Instant) -> EncodedPacket {
    let mut data = index.to_be_bytes().to_vec();
    data.resize(200, 0x21);
    let ms = i64::from(index) * 1024 * 1000 / 48000;
    EncodedPacket {
        kind: MediaKind::Audio,
        data: Bytes::from(data),
        pts: ms,
        dts: ms,
        timebase_num: 1,
        timebase_den: 1000,
        keyframe: false,
        sys_dts_usec: start.elapsed().as_micros() as i64,
    }
}

struct Events(mpsc::Sender<String>);

impl Observer for Events {
    fn publishing(&mut self) {
        let _ = self.0.send("publishing".into());
    }
    fn event(&mut self, event: &SessionEvent) {
        let _ = self.0.send(format!("{event:?}"));
    }
    fn ended(&mut self, outcome: Outcome) {
        let _ = self.0.send(format!("ended: {outcome:?}"));
    }
}

fn frame_index(tag: &Tag) -> Option<u32> {
    match tag.kind {
        TagKind::Video if tag.is_frame() => Some(
            tag.data
                .get(10..14)?
                .iter()
                .fold(0, |index, digit| index << 7 | u32::from(digit & 0x7f)),
        ),
        TagKind::Audio if tag.is_frame() => {
            Some(u32::from_be_bytes(tag.data.get(2..6)?.try_into().ok()?))
        }
        _ => None,
    }
}

#[test]
fn a_slow_reader_makes_video_drop_like_obs_and_recovers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rate = Arc::new(AtomicU64::new(0));
    let (ingest, relay) = runtime.block_on(async {
        let config = IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
        let ingest = Ingest::start(config).await.unwrap();
        let relay = throttled_relay(ingest.local_addrs()[0], Arc::clone(&rate)).await;
        (ingest, relay)
    });
    let output = LiveOutput::new("live-test").unwrap();
    let mut config =
        SessionConfig::new(RtmpUrl::parse(&format!("rtmp://{relay}/live/slow")).unwrap());
    config.congestion = Some(DropThresholds::default());
    config.link.local.send_buffer = Some(32 * 1024);
    let (events_tx, events) = mpsc::channel();
    output.start(config, setup(), Events(events_tx)).unwrap();
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)).unwrap(),
        "publishing"
    );

    // 16 s of live media: full speed, then 7 s at 24 kB/s (a fifth of the bitrate), then
    // full speed again.
    let start = Instant::now();
    let (mut video, mut audio) = (0u32, 0u32);
    let mut congestion_seen: f32 = 0.0;
    let refused = AtomicBool::new(false);
    while start.elapsed() < Duration::from_secs(16) {
        let t = start.elapsed();
        rate.store(
            if (3..10).contains(&t.as_secs()) {
                24_000
            } else {
                0
            },
            Ordering::Relaxed,
        );
        while u128::from(video) * 1000 / 30 <= t.as_millis() {
            refused.fetch_or(
                output
                    .sender()
                    .try_send(video_packet(video, start))
                    .is_err(),
                Ordering::Relaxed,
            );
            video += 1;
        }
        while u128::from(audio) * 1024 * 1000 / 48000 <= t.as_millis() {
            refused.fetch_or(
                output
                    .sender()
                    .try_send(audio_packet(audio, start))
                    .is_err(),
                Ordering::Relaxed,
            );
            audio += 1;
        }
        if let Some(handle) = output.handle() {
            congestion_seen = congestion_seen.max(handle.congestion());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let handle = output.handle().unwrap();
    let congestion_after = handle.congestion();
    output.stop(Some(start.elapsed().as_micros() as i64));
    let mut log = Vec::new();
    let ended = loop {
        let event = events
            .recv_timeout(Duration::from_secs(20))
            .expect("the output never ended");
        if event.starts_with("ended") {
            break event;
        }
        log.push(event);
    };
    assert!(ended.starts_with("ended: Stopped"), "{ended}");
    println!("events: {log:?}");
    assert!(
        !refused.load(Ordering::Relaxed),
        "the channel refused packets"
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = ingest.stats().remove("slow").expect("nothing recorded");
    drop(ingest);
    println!("{stats:?}");
    let tags = common::read_flv(&stats.path);

    let got = |kind| -> BTreeSet<u32> {
        tags.iter()
            .filter(|t| t.kind == kind)
            .filter_map(frame_index)
            .collect()
    };
    let (got_video, got_audio) = (got(TagKind::Video), got(TagKind::Audio));
    let sent_video = video;
    let dropped = handle.dropped_frames();
    println!(
        "video sent {sent_video}, received {}, dropped {dropped}; audio sent {audio}, received {}; \
         peak congestion {congestion_seen:.2}, after recovery {congestion_after:.2}",
        got_video.len(),
        got_audio.len()
    );
    // The stop point cuts the last few packets: compare up to what the last tag covers.
    let last_video = *got_video.last().unwrap();
    let last_audio = *got_audio.last().unwrap();
    assert!(
        last_video + 15 >= sent_video,
        "the stream did not recover: last frame {last_video} of {sent_video}"
    );
    assert_eq!(
        got_audio.len() as u32,
        last_audio + 1,
        "audio is never dropped"
    );
    for i in (0..=last_video).filter(|&i| frame_type(i) == Frame::I) {
        assert!(got_video.contains(&i), "keyframe {i} was dropped");
    }
    let missing: Vec<u32> = (0..=last_video)
        .filter(|i| !got_video.contains(i))
        .collect();
    assert!(
        !missing.is_empty(),
        "a fifth of the bitrate for 7 s must drop video"
    );
    assert_eq!(
        missing.len() as u64,
        dropped,
        "every missing frame is counted as dropped"
    );
    // A dropped reference frame takes every inter frame up to the next keyframe with it.
    for &m in missing.iter().filter(|&&m| frame_type(m) == Frame::P) {
        let next_key = (m + 1..).find(|&i| frame_type(i) == Frame::I).unwrap();
        let decodable_gap = (m + 1..next_key.min(last_video + 1)).all(|i| !got_video.contains(&i));
        assert!(
            decodable_gap,
            "an inter frame after dropped P-frame {m} was sent"
        );
    }
    assert!(
        congestion_seen >= 1.0,
        "congestion never reported: {congestion_seen}"
    );
    assert!(
        congestion_after < 0.5,
        "congestion did not recover: {congestion_after}"
    );
}
