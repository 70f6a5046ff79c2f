//! The live output the OBS plugin drives, fed like OBS's encoders feed it, on loopback
//! against the reference ingest: congestion drops video as OBS does and recovers, or, with
//! dynamic bitrate, lowers the bitrate asked of the encoder and raises it back.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::throttled_relay;
use obs_goaway::ingest::{Ingest, IngestConfig};
use obs_goaway::live::{
    AudioSetup, EncodedPacket, End, LiveOutput, MediaKind, Observer, StreamSetup, VideoSetup,
};
use obs_goaway::media::{Tag, TagKind, VideoCodec};
use obs_goaway::session::{DropThresholds, DynamicBitrate, SessionConfig, SessionEvent};
use obs_goaway::transport::RtmpUrl;

const SPS_PPS: &[u8] = &[
    0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e, 0xe8, 0x80, 0, 0, 0, 1, 0x68, 0xeb, 0xef, 0x20,
];
const FRAME_BYTES: usize = 4000;

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

/// Encoded video frame `index` (Annex-B, NAL ref idc by type, the index in the payload),
/// `size` bytes long.
fn video_packet(index: u32, start: Instant, size: usize) -> EncodedPacket {
    let kind = frame_type(index);
    let header = match kind {
        Frame::I => 0x65,
        Frame::P => 0x41,
        Frame::B => 0x01,
    };
    let mut data = vec![0, 0, 0, 1, header];
    data.extend_from_slice(&video_index_bytes(index));
    data.resize(size, 0xab);
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
        track: 0,
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
        track: 0,
    }
}

struct Events(mpsc::Sender<String>);

impl Observer for Events {
    fn publishing(&mut self) -> bool {
        let _ = self.0.send("publishing".into());
        true
    }
    fn event(&mut self, event: &SessionEvent) {
        let _ = self.0.send(format!("{event:?}"));
    }
    fn ended(&mut self, end: End) {
        let _ = self.0.send(format!("ended: {end:?}"));
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

/// A live output publishing through a throttled relay to a reference ingest.
struct Rig {
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    ingest: Ingest,
    rate: Arc<AtomicU64>,
    output: LiveOutput,
    events: mpsc::Receiver<String>,
}

impl Rig {
    /// Starts publishing `key` with `config` (its URL is filled in) from a socket with a
    /// 32 KiB send buffer and waits until it publishes.
    fn start(key: &str, config: SessionConfig) -> Self {
        Self::start_with(key, config, Some(32 * 1024))
    }

    /// As [`Rig::start`], with a send buffer of `send_buffer` bytes (`None`: the OS's,
    /// which Linux grows to megabytes on loopback).
    fn start_with(key: &str, mut config: SessionConfig, send_buffer: Option<usize>) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rate = Arc::new(AtomicU64::new(0));
        let (ingest, relay) = runtime.block_on(async {
            let config =
                IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
            let ingest = Ingest::start(config).await.unwrap();
            let relay = throttled_relay(ingest.local_addrs()[0], Arc::clone(&rate), None).await;
            (ingest, relay)
        });
        let output = LiveOutput::new("live-test").unwrap();
        config.url = RtmpUrl::parse(&format!("rtmp://{relay}/live/{key}")).unwrap();
        config.link.local.send_buffer = send_buffer;
        let (events_tx, events) = mpsc::channel();
        output
            .start(config, setup(), None, Events(events_tx))
            .unwrap();
        assert_eq!(
            events.recv_timeout(Duration::from_secs(10)).unwrap(),
            "publishing"
        );
        Self {
            runtime,
            _dir: dir,
            ingest,
            rate,
            output,
            events,
        }
    }

    /// Feeds 30 fps video and audio in real time for `length`: the relay forwards
    /// `throttle(elapsed)` bytes per second (0: full speed), each video frame is
    /// `frame_bytes()` long, and `watch` runs every 5 ms. Returns the video and audio
    /// packets fed, and when feeding started.
    fn feed(
        &self,
        length: Duration,
        throttle: impl Fn(Duration) -> u64,
        frame_bytes: impl Fn() -> usize,
        mut watch: impl FnMut(),
    ) -> (u32, u32, Instant) {
        let start = Instant::now();
        let (mut video, mut audio) = (0u32, 0u32);
        let refused = AtomicBool::new(false);
        let sender = self.output.sender();
        while start.elapsed() < length {
            let t = start.elapsed();
            self.rate.store(throttle(t), Ordering::Relaxed);
            while u128::from(video) * 1000 / 30 <= t.as_millis() {
                let packet = video_packet(video, start, frame_bytes());
                refused.fetch_or(sender.try_send(packet).is_err(), Ordering::Relaxed);
                video += 1;
            }
            while u128::from(audio) * 1024 * 1000 / 48000 <= t.as_millis() {
                let packet = audio_packet(audio, start);
                refused.fetch_or(sender.try_send(packet).is_err(), Ordering::Relaxed);
                audio += 1;
            }
            watch();
            // Pacing: the packets are fed in real time, as OBS's encoders hand them over.
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !refused.load(Ordering::Relaxed),
            "the channel refused packets"
        );
        (video, audio, start)
    }

    /// Stops at the current time and waits for the end; returns the session's events and
    /// the tags the ingest recorded.
    fn finish(self, start: Instant, key: &str) -> (Vec<String>, Vec<Tag>) {
        self.output.stop(Some(start.elapsed().as_micros() as i64));
        let mut log = Vec::new();
        let ended = loop {
            let event = self
                .events
                .recv_timeout(Duration::from_secs(20))
                .expect("the output never ended");
            if event.starts_with("ended") {
                break event;
            }
            log.push(event);
        };
        assert!(
            ended.starts_with("ended: Stopped"),
            "{ended}; events before: {log:?}"
        );
        common::wait_until(
            "the ingest to see the publisher leave",
            Duration::from_secs(10),
            || self.ingest.publishers(key) == 0,
        );
        let stats = self.ingest.stats().remove(key).expect("nothing recorded");
        drop(self.ingest);
        drop(self.runtime);
        println!("{stats:?}");
        (log, common::read_flv(&stats.path))
    }
}

/// The frame indexes of one kind the ingest recorded.
fn received(tags: &[Tag], kind: TagKind) -> BTreeSet<u32> {
    tags.iter()
        .filter(|t| t.kind == kind)
        .filter_map(frame_index)
        .collect()
}

#[test]
fn a_slow_reader_makes_video_drop_like_obs_and_recovers() {
    let mut config = SessionConfig::new(RtmpUrl::parse("rtmp://127.0.0.1/live/slow").unwrap());
    config.congestion = Some(DropThresholds::default());
    let rig = Rig::start("slow", config);
    // 16 s of live media: full speed, then 7 s at 24 kB/s (a fifth of the bitrate), then
    // full speed again.
    let mut congestion_seen: f32 = 0.0;
    let (sent_video, audio, start) = rig.feed(
        Duration::from_secs(16),
        |t| {
            if (3..10).contains(&t.as_secs()) {
                24_000
            } else {
                0
            }
        },
        || FRAME_BYTES,
        || {
            if let Some(handle) = rig.output.handle() {
                congestion_seen = congestion_seen.max(handle.congestion());
            }
        },
    );
    let handle = rig.output.handle().unwrap();
    let congestion_after = handle.congestion();
    let (log, tags) = rig.finish(start, "slow");
    println!("events: {log:?}");

    let (got_video, got_audio) = (
        received(&tags, TagKind::Video),
        received(&tags, TagKind::Audio),
    );
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

/// A link slower than the stream, from a socket whose send buffer the OS grew to megabytes
/// while the link was fast: the backlog must stay where congestion control sees it (video
/// drops as with a small buffer), and the socket must not look stalled while TCP still
/// delivers (no needless resume).
#[test]
fn a_slow_link_behind_a_big_send_buffer_drops_video_and_does_not_stall() {
    let mut config = SessionConfig::new(RtmpUrl::parse("rtmp://127.0.0.1/live/big").unwrap());
    config.congestion = Some(DropThresholds::default());
    let rig = Rig::start_with("big", config, None);
    // 240 kB/s of video: full speed for 2 s (the OS grows the buffer), then 14 s at 80 kB/s.
    let (sent_video, _, start) = rig.feed(
        Duration::from_secs(16),
        |t| if t.as_secs() < 2 { 0 } else { 80_000 },
        || 2 * FRAME_BYTES,
        || (),
    );
    let dropped = rig.output.handle().unwrap().dropped_frames();
    let (log, tags) = rig.finish(start, "big");
    let lost: Vec<&String> = log
        .iter()
        .filter(|e| e.starts_with("ConnectionLost"))
        .collect();
    assert!(
        lost.is_empty(),
        "a slow link was taken for a dead one: {lost:?}"
    );
    println!(
        "video sent {sent_video}, received {}, dropped {dropped}",
        received(&tags, TagKind::Video).len()
    );
    assert!(dropped > 0, "80 kB/s for a 240 kB/s stream must drop video");
}

/// Dynamic bitrate: the same kind of slow reader lowers the bitrate the session asks of the
/// encoder (which this producer honours, as OBS's encoders do) instead of dropping frames,
/// and once the link is fast again the bitrate climbs back to the original in steps.
#[test]
fn a_slow_reader_lowers_the_requested_bitrate_and_it_recovers() {
    const ORIGINAL_KBPS: u32 = 2000;
    const AUDIO_KBPS: u32 = 75; // 200-byte AAC frames at 48 kHz
    let mut config = SessionConfig::new(RtmpUrl::parse("rtmp://127.0.0.1/live/dbr").unwrap());
    config.congestion = Some(DropThresholds::default());
    // OBS waits 4 s between raises; a shorter wait keeps the recovery within the test.
    config.dynamic_bitrate = Some(DynamicBitrate {
        raise_interval: Duration::from_millis(500),
        ..DynamicBitrate::new(ORIGINAL_KBPS, AUDIO_KBPS)
    });
    let rig = Rig::start("dbr", config);
    let handle = rig.output.handle().unwrap();
    assert_eq!(handle.video_bitrate_kbps(), ORIGINAL_KBPS);
    // 16 s: full speed, then 8 s at 80 kB/s (640 kb/s with the audio; the first seconds
    // fill the socket buffers), then full speed.
    let throttled = 2..10;
    let mut lowest = ORIGINAL_KBPS;
    let mut lowest_at = Duration::ZERO;
    let feeding = Instant::now();
    let (sent_video, _, start) = rig.feed(
        Duration::from_secs(16),
        |t| {
            if throttled.contains(&t.as_secs()) {
                80_000
            } else {
                0
            }
        },
        || (handle.video_bitrate_kbps() as usize * 1000 / 8 / 30).max(16),
        || {
            let kbps = handle.video_bitrate_kbps();
            if kbps < lowest {
                (lowest, lowest_at) = (kbps, feeding.elapsed());
            }
        },
    );
    let final_kbps = handle.video_bitrate_kbps();
    let dropped = handle.dropped_frames();
    let (log, tags) = rig.finish(start, "dbr");
    let changes: Vec<&String> = log
        .iter()
        .filter(|e| e.starts_with("BitrateChanged"))
        .collect();
    println!("bitrate changes: {changes:#?}");
    println!("lowest {lowest} kb/s at {lowest_at:?}, at the end {final_kbps} kb/s");

    // The link carries 640 kb/s with the audio, 565 for video; measured over one to two
    // seconds of bursty sends (loopback), it reads differently each time: half the
    // original is the bar.
    assert!(
        lowest <= ORIGINAL_KBPS / 2,
        "the bitrate was not lowered enough: {lowest} kb/s"
    );
    assert!(
        throttled.contains(&lowest_at.as_secs()),
        "lowered outside the slow period: at {lowest_at:?}"
    );
    assert!(
        changes.iter().any(|c| c.contains("step: Lowered")),
        "no lowering reported"
    );
    assert!(
        changes.iter().any(|c| c.contains("step: Recovered")),
        "the bitrate never got back to the original"
    );
    assert_eq!(final_kbps, ORIGINAL_KBPS, "not recovered by the end");
    // Nothing dropped: every frame arrived, in order, up to the stop point.
    assert_eq!(dropped, 0, "dynamic bitrate drops no frames");
    let got_video = received(&tags, TagKind::Video);
    let last_video = *got_video.last().unwrap();
    assert_eq!(
        got_video.len() as u32,
        last_video + 1,
        "video frames missing"
    );
    assert!(
        last_video + 15 >= sent_video,
        "the backlog never drained: last frame {last_video} of {sent_video}"
    );
}

/// An observer whose event handling panics when the stream publishes: a panic in the
/// output's task (session + observer).
struct PanicsOnPublish(mpsc::Sender<String>);

impl Observer for PanicsOnPublish {
    fn publishing(&mut self) -> bool {
        true
    }
    fn event(&mut self, event: &SessionEvent) {
        if matches!(event, SessionEvent::Publishing { .. }) {
            panic!("injected panic in the stream's task");
        }
    }
    fn ended(&mut self, end: End) {
        let _ = self.0.send(format!("{end:?}"));
    }
}

/// A reference ingest on loopback and a URL publishing `key` to it.
fn ingest(
    runtime: &tokio::runtime::Runtime,
    dir: &tempfile::TempDir,
    key: &str,
) -> (Ingest, RtmpUrl) {
    let config = IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    let ingest = runtime.block_on(Ingest::start(config)).unwrap();
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/{key}", ingest.local_addrs()[0])).unwrap();
    (ingest, url)
}

/// A panic in the output's task is contained: the stream ends once, as an internal error,
/// and a stop asked afterwards finds nothing running (OBS answers it at once, no hang).
#[test]
fn a_panic_in_the_stream_task_ends_the_stream_as_an_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_ingest, url) = ingest(&runtime, &dir, "panic");
    let output = LiveOutput::new("live-test").unwrap();
    let (tx, ended) = mpsc::channel();
    let config = SessionConfig::new(url);
    output
        .start(config, setup(), None, PanicsOnPublish(tx))
        .unwrap();
    let end = ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream never ended after its task panicked");
    assert!(
        end.starts_with("Failed") && end.contains("injected panic") && end.contains("Error"),
        "{end}"
    );
    assert!(!output.stop(None), "the stream still looks alive");
    assert!(
        ended.try_recv().is_err(),
        "the end was reported more than once"
    );
}

/// A stop while connecting ends the stream without letting media flow, reported once.
#[test]
fn a_stop_while_connecting_begins_no_capture() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_ingest, url) = ingest(&runtime, &dir, "early");
    let output = LiveOutput::new("live-test").unwrap();
    let (tx, events) = mpsc::channel();
    let config = SessionConfig::new(url);
    output.start(config, setup(), None, Events(tx)).unwrap();
    assert!(output.stop(Some(0)), "a starting stream ignored the stop");
    let mut seen = Vec::new();
    let end = loop {
        let event = events
            .recv_timeout(Duration::from_secs(10))
            .expect("the stream never ended");
        if event.starts_with("ended") {
            break event;
        }
        seen.push(event);
    };
    assert_eq!(end, "ended: Abandoned { capture_began: false }", "{seen:?}");
    assert!(!seen.contains(&"publishing".to_string()), "{seen:?}");
    assert!(!output.stop(None));
}

/// Where to publish is found on the output's runtime; when it cannot be, the stream ends as
/// a failure that says why, and the output can start again (OBS's listed services resolve
/// their server there, not on OBS's UI thread).
#[test]
fn a_configuration_that_cannot_be_made_ends_the_stream_saying_why() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_ingest, url) = ingest(&runtime, &dir, "configured");
    let output = LiveOutput::new("live-test").unwrap();
    let caller = std::thread::current().id();
    let (tx, events) = mpsc::channel();
    let handle = Arc::new(obs_goaway::session::SessionHandle::default());
    let configure = move || {
        assert_ne!(
            std::thread::current().id(),
            caller,
            "made on the caller's thread"
        );
        Err("no server for this service".to_string())
    };
    output
        .start_configuring(handle, configure, setup(), None, Events(tx))
        .unwrap();
    let end = events
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream never ended");
    assert!(
        end.contains("Destination(\"no server for this service\")"),
        "{end}"
    );
    let (tx, events) = mpsc::channel();
    output
        .start(SessionConfig::new(url), setup(), None, Events(tx))
        .unwrap();
    assert!(output.stop(Some(0)));
    let end = events
        .recv_timeout(Duration::from_secs(10))
        .expect("the second stream never ended");
    assert!(end.starts_with("ended"), "{end}");
}

/// The packets the channel refused count for the stream they belong to, not the output's
/// whole life (OBS shows them as the stream's dropped frames).
#[test]
fn refused_packets_count_per_stream() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_ingest, url) = ingest(&runtime, &dir, "refused");
    let output = LiveOutput::new("live-test").unwrap();
    output.note_refused();
    output.note_refused();
    assert_eq!(output.refused(), 2);
    let (tx, _events) = mpsc::channel();
    let config = SessionConfig::new(url);
    output.start(config, setup(), None, Events(tx)).unwrap();
    assert_eq!(output.refused(), 0, "the last stream's count carried over");
}

/// Reads the output's live figures while hearing the end, as OBS does (`log_frame_info`
/// asks for the dropped frames from inside the call that ends data capture).
struct ReadsFiguresAtTheEnd(std::sync::Weak<LiveOutput>, mpsc::Sender<String>);

impl Observer for ReadsFiguresAtTheEnd {
    fn publishing(&mut self) -> bool {
        true
    }
    fn event(&mut self, _: &SessionEvent) {}
    fn ended(&mut self, end: End) {
        let output = self.0.upgrade().expect("the output is gone");
        let figures = (output.handle().is_some(), output.refused());
        let _ = self.1.send(format!("{end:?} {figures:?}"));
    }
}

#[test]
fn the_end_can_read_the_live_figures() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_ingest, url) = ingest(&runtime, &dir, "figures");
    let output = Arc::new(LiveOutput::new("live-test").unwrap());
    let (tx, ended) = mpsc::channel();
    let observer = ReadsFiguresAtTheEnd(Arc::downgrade(&output), tx);
    output
        .start(SessionConfig::new(url), setup(), None, observer)
        .unwrap();
    assert!(output.stop(None));
    let end = ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the end never came: reading the figures deadlocked");
    assert!(end.ends_with("(true, 0)"), "{end}");
}
