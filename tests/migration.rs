//! Lossless moves between connections, against the reference ingest on loopback.
//! Every test compares what the ingest recorded with the input, frame by frame (hashes).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use common::*;
use obs_goaway::ingest::{AuthConfig, Ingest, IngestConfig, SignalKind, StreamStats};
use obs_goaway::media::compare::{compare, Comparison};
use obs_goaway::media::{Tag, TagKind};
use obs_goaway::protocol::auth::{AuthMethod, Credentials};
use obs_goaway::session::{
    self, Cause, CutoverKind, MigrationMode, Report, SessionConfig, SessionEvent,
};
use obs_goaway::transport::RtmpUrl;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A stream of made-up frames: metadata, headers, then video at 30 fps with a keyframe every
/// `gop_ms` and audio every 23 ms, each frame's bytes unique.
fn synthetic(duration_ms: u32, gop_ms: u32, video: bool, audio: bool) -> Vec<Tag> {
    let mut tags = vec![Tag {
        kind: TagKind::Script,
        timestamp: 0,
        data: Bytes::from_static(b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09"),
    }];
    if video {
        tags.push(Tag::video(
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
        ));
    }
    if audio {
        tags.push(Tag::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])));
    }
    let mut frames = Vec::new();
    let mut n = 0u32;
    for ts in (0..duration_ms).step_by(33).filter(|_| video) {
        let key = ts % gop_ms < 33;
        let mut data = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        data.extend((0..400).map(|i| (i as u32 ^ n) as u8));
        data.extend_from_slice(&n.to_be_bytes());
        frames.push(Tag::video(ts, data.into()));
        n += 1;
    }
    for ts in (0..duration_ms).step_by(23).filter(|_| audio) {
        let mut data = vec![0xaf, 1];
        data.extend_from_slice(&n.to_be_bytes());
        frames.push(Tag::audio(ts, data.into()));
        n += 1;
    }
    frames.sort_by_key(|t| (t.timestamp, t.kind != TagKind::Video));
    tags.extend(frames);
    tags
}

struct Outcome {
    report: Report,
    events: Vec<SessionEvent>,
    stats: StreamStats,
    comparison: Comparison,
}

/// Publishes `tags` to `ingest` at `speed`; at each `(after, kind)` asks it to signal.
async fn publish(
    ingest: &Ingest,
    key: &str,
    tags: Vec<Tag>,
    speed: f64,
    signals: &[(Duration, SignalKind)],
    tweak: impl FnOnce(&mut SessionConfig),
) -> Outcome {
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/{key}", ingest.local_addrs()[0])).unwrap();
    let mut config = SessionConfig::new(url);
    tweak(&mut config);
    let (sender, receiver) = session::packet_channel(256);
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let feeder = feed_live(tags.clone(), sender, speed);
    let session = tokio::spawn(session::run(config, receiver, Some(event_tx)));
    let start = tokio::time::Instant::now();
    for &(after, kind) in signals {
        // The schedule is part of the scenario: where in the stream the server asks. The
        // publisher must be live by then, however slowly it started.
        tokio::time::sleep_until(start + after).await;
        wait_until_async(
            format!("a publisher of {key} at the ingest"),
            Duration::from_secs(10),
            || ingest.publishers(key) > 0,
        )
        .await;
        ingest.signal_all(Some(kind));
    }
    let report = session.await.unwrap().expect("session failed");
    feeder.join().unwrap();
    let mut events = Vec::new();
    while let Ok(event) = event_rx.try_recv() {
        events.push(event);
    }
    let stats = wait_for_recording(ingest, key).await;
    let comparison = compare(&tags, &read_flv(&stats.path));
    Outcome {
        report,
        events,
        stats,
        comparison,
    }
}

/// The key's statistics once its last publisher has gone.
async fn wait_for_recording(ingest: &Ingest, key: &str) -> StreamStats {
    wait_until_async(
        format!("the publisher of {key} to leave"),
        Duration::from_secs(10),
        || ingest.publishers(key) == 0,
    )
    .await;
    ingest.stats().remove(key).expect("nothing recorded")
}

fn assert_lossless(outcome: &Outcome) {
    assert!(outcome.comparison.is_lossless(), "{:?}", outcome.comparison);
    assert_eq!(outcome.report.lost, 0);
}

/// A reference ingest on a free loopback port, recording into a fresh directory.
async fn ingest_with(tweak: impl FnOnce(&mut IngestConfig)) -> (tempfile::TempDir, Ingest) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = IngestConfig::new(loopback(), dir.path().to_path_buf());
    tweak(&mut config);
    let ingest = Ingest::start(config).await.unwrap();
    (dir, ingest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_away_moves_make_before_break_without_loss() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let outcome = publish(
        &ingest,
        "ga",
        sample_tags(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::GoAway)],
        |_| {},
    )
    .await;
    assert_lossless(&outcome);
    let cutovers = &outcome.report.cutovers;
    assert_eq!(cutovers.len(), 1, "{cutovers:?}");
    assert_eq!(
        (cutovers[0].cause, cutovers[0].kind),
        (Cause::GoAway, CutoverKind::MakeBeforeBreak)
    );
    assert_eq!(
        cutovers[0].keyframe_timestamp % 1000,
        0,
        "the switch is at a keyframe"
    );
    assert_eq!(outcome.stats.cutovers, [cutovers[0].keyframe_timestamp]);
    assert_eq!(
        outcome.stats.first_timestamps,
        [0, cutovers[0].keyframe_timestamp],
        "timestamps continue"
    );
    assert_eq!(
        (outcome.report.duplicates, outcome.stats.duplicates),
        (0, 0)
    );
    assert_eq!(outcome.report.connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebased_timestamps_restart_at_zero_on_every_connection() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let outcome = publish(
        &ingest,
        "rebase",
        sample_tags(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::GoAway)],
        |c| {
            c.rebase_timestamps = true;
        },
    )
    .await;
    assert_eq!(outcome.report.cutovers.len(), 1);
    assert!(outcome.report.cutovers[0].keyframe_timestamp > 0);
    assert_eq!(outcome.stats.first_timestamps, [0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_request_moves_make_before_break_without_loss() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let outcome = publish(
        &ingest,
        "rr",
        sample_tags(),
        4.0,
        &[
            (Duration::from_millis(1000), SignalKind::ReconnectRequest),
            (Duration::from_millis(3000), SignalKind::ReconnectRequest),
        ],
        |_| {},
    )
    .await;
    assert_lossless(&outcome);
    assert_eq!(outcome.report.cutovers.len(), 2);
    assert!(outcome
        .report
        .cutovers
        .iter()
        .all(|c| c.cause == Cause::ReconnectRequest && c.kind == CutoverKind::MakeBeforeBreak));
    assert_eq!(outcome.stats.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_second_publish_falls_back_to_break_before_make() {
    let (_dir, ingest) = ingest_with(|c| c.refuse_takeover = true).await;
    let outcome = publish(
        &ingest,
        "bbm",
        sample_tags(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::GoAway)],
        |_| {},
    )
    .await;
    assert_lossless(&outcome);
    let cutovers = &outcome.report.cutovers;
    assert_eq!(cutovers.len(), 1, "{cutovers:?}");
    assert_eq!(cutovers[0].kind, CutoverKind::BreakBeforeMake);
    assert_eq!(outcome.stats.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_before_make_by_configuration() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let outcome = publish(
        &ingest,
        "cfg",
        sample_tags(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::ReconnectRequest)],
        |c| {
            c.mode = MigrationMode::BreakBeforeMake;
        },
    )
    .await;
    assert_lossless(&outcome);
    assert_eq!(
        outcome.report.cutovers[0].kind,
        CutoverKind::BreakBeforeMake
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_request_redirects_to_another_ingest() {
    let (_dir_b, b) = ingest_with(|_| {}).await;
    let b_addr = b.local_addrs()[0];
    let (_dir_a, a) = ingest_with(|c| c.redirect = Some(format!("//{b_addr}/live"))).await;
    let tags = sample_tags();
    let outcome = publish(
        &a,
        "moving",
        tags.clone(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::ReconnectRequest)],
        |_| {},
    )
    .await;
    let on_b = wait_for_recording(&b, "moving").await;
    let mut recorded = read_flv(&outcome.stats.path);
    assert!(
        outcome.comparison.lost > 0,
        "part of the stream went to the second ingest"
    );
    recorded.extend(read_flv(&on_b.path));
    let joined = compare(&tags, &recorded);
    assert!(joined.is_lossless(), "{joined:?}");
    assert!(outcome.events.iter().any(|e| matches!(e,
        SessionEvent::Publishing { url, .. } if url.contains(&b_addr.port().to_string()))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_server_closing_before_the_keyframe_loses_nothing() {
    let (_dir, ingest) =
        ingest_with(|c| c.close_after_signal = Some(Duration::from_millis(100))).await;
    // Keyframes every 4 s at 2x: the old connection is gone 2 s before the next one.
    let tags = synthetic(12_000, 4000, true, true);
    let outcome = publish(
        &ingest,
        "early",
        tags,
        2.0,
        &[(Duration::from_millis(2300), SignalKind::GoAway)],
        |_| {},
    )
    .await;
    assert_lossless(&outcome);
    let cutover = &outcome.report.cutovers[0];
    assert_eq!(cutover.kind, CutoverKind::Resumed);
    assert_eq!(
        cutover.keyframe_timestamp % 4000,
        0,
        "resumed from a keyframe: {cutover:?}"
    );
    assert!(
        outcome.stats.duplicates >= outcome.report.duplicates,
        "the ingest skipped every frame the publisher resent: {} < {}",
        outcome.stats.duplicates,
        outcome.report.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_keyframe_the_deadline_switches_at_the_next_packet() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let tags = synthetic(8000, 1_000_000, true, true);
    let outcome = publish(
        &ingest,
        "nokey",
        tags,
        4.0,
        &[(Duration::from_millis(500), SignalKind::GoAway)],
        |c| {
            c.keyframe_deadline = Duration::from_millis(300);
        },
    )
    .await;
    assert_lossless(&outcome);
    let cutover = &outcome.report.cutovers[0];
    assert!(cutover.took >= Duration::from_millis(300), "{cutover:?}");
    assert_eq!(outcome.stats.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_streams_move_at_the_next_audio_frame() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let tags = synthetic(6000, 1000, false, true);
    let outcome = publish(
        &ingest,
        "radio",
        tags,
        4.0,
        &[(Duration::from_millis(500), SignalKind::GoAway)],
        |_| {},
    )
    .await;
    assert_lossless(&outcome);
    assert_eq!(
        outcome.report.cutovers[0].kind,
        CutoverKind::MakeBeforeBreak
    );
    // It did not wait for a video keyframe that never comes (the 10 s deadline).
    assert!(outcome.report.cutovers[0].took < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_that_do_not_announce_support_are_never_signalled() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let tags = synthetic(3000, 1000, true, true);
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/quiet", ingest.local_addrs()[0])).unwrap();
    let mut config = SessionConfig::new(url);
    config.link.announce_go_away = false;
    config.link.announce_reconnect = false;
    let (sender, receiver) = session::packet_channel(64);
    let feeder = feed_live(tags.clone(), sender, 4.0);
    let session = tokio::spawn(session::run(config, receiver, None));
    wait_until_async(
        "the publisher of quiet at the ingest",
        Duration::from_secs(10),
        || ingest.publishers("quiet") > 0,
    )
    .await;
    assert_eq!(ingest.signal_all(Some(SignalKind::GoAway)), 0);
    assert_eq!(ingest.signal_all(Some(SignalKind::ReconnectRequest)), 0);
    let report = session.await.unwrap().unwrap();
    feeder.join().unwrap();
    assert_eq!((report.connections, report.cutovers.len()), (1, 0));
    let stats = wait_for_recording(&ingest, "quiet").await;
    assert!(compare(&tags, &read_flv(&stats.path)).is_lossless());
}

#[test]
fn a_killed_and_restarted_server_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let serve = || {
        let child = Command::new(GOAWAY)
            .args(["serve", "-q", "--listen", &addr, "--record"])
            .arg(dir.path())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Guard(child)
    };
    let mut server = serve();
    let tags = sample_tags();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = RtmpUrl::parse(&format!("rtmp://{addr}/live/crash")).unwrap();
    let mut config = SessionConfig::new(url);
    config.reconnect.initial_delay = Duration::from_millis(300);
    let (sender, receiver) = session::packet_channel(256);
    let feeder = feed_live(tags.clone(), sender, 4.0);
    let session = runtime.spawn(session::run(config, receiver, None));
    wait_for_media(&dir.path().join("crash.flv"));
    server.0.kill().unwrap(); // SIGKILL: no signal, no goodbye
    server.0.wait().unwrap();
    // The outage under test: the server stays down longer than the first retry delay.
    std::thread::sleep(Duration::from_millis(500));
    let restarted = serve();
    let report = runtime.block_on(session).unwrap().expect("session failed");
    feeder.join().unwrap();
    // The session ended when the server closed the connection after our FIN, so it had
    // recorded everything: killing it now loses nothing.
    drop(restarted);
    let first = read_flv(&dir.path().join("crash.flv"));
    let second = read_flv(&dir.path().join("crash.1.flv"));
    let mut recorded = first.clone();
    recorded.extend(second);
    let joined = compare(&tags, &recorded);
    assert_eq!((joined.lost, joined.foreign), (0, 0), "{joined:?}");
    assert_eq!(report.lost, 0);
    assert!(report
        .cutovers
        .iter()
        .any(|c| c.cause == Cause::ConnectionLost && c.kind == CutoverKind::Resumed));
    assert!(!first.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_of_100_moves_loses_and_duplicates_nothing() {
    const MOVES: usize = 100;
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/soak", ingest.local_addrs()[0])).unwrap();
    let (sender, receiver) = session::packet_channel(256);
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    // A long synthetic stream, keyframe every 500 ms, at 10x: a keyframe every 50 ms.
    let tags = synthetic(600_000, 500, true, true);
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (tags, stop) = (tags.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut sent = 0;
            for tag in tags {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = start + Duration::from_millis(u64::from(tag.timestamp)).div_f64(10.0);
                // Pacing, as in `feed`.
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                sender.send_blocking(tag).unwrap();
                sent += 1;
            }
            sent
        })
    };
    let session = tokio::spawn(session::run(
        SessionConfig::new(url),
        receiver,
        Some(event_tx),
    ));
    let mut moves = 0;
    let mut kinds = [SignalKind::GoAway, SignalKind::ReconnectRequest]
        .into_iter()
        .cycle();
    while moves < MOVES {
        // The previous successor's media is at the ingest before it is asked to move.
        wait_until_async(
            format!("move {moves}: the successor's media at the ingest"),
            Duration::from_secs(10),
            || {
                ingest
                    .stats()
                    .get("soak")
                    .is_some_and(|s| s.cutovers.len() >= moves)
            },
        )
        .await;
        assert_eq!(
            ingest.signal_all(kinds.next()),
            1,
            "move {moves}: one publisher to signal"
        );
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), event_rx.recv())
                .await
                .expect("no move within 10 s")
                .unwrap();
            if let SessionEvent::Moved(_) = event {
                moves += 1;
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = feeder.join().unwrap();
    let report = session.await.unwrap().unwrap();
    let stats = wait_for_recording(&ingest, "soak").await;
    let comparison = compare(&tags[..sent], &read_flv(&stats.path));
    assert!(comparison.is_lossless(), "{comparison:?}");
    assert_eq!(report.cutovers.len(), MOVES);
    assert_eq!(
        (report.duplicates, stats.duplicates, report.lost),
        (0, 0, 0)
    );
    assert_eq!(report.connections as usize, MOVES + 1);
    // Memory stays flat: the buffer never holds more than about a group of pictures.
    assert!(
        report.peak_buffer_bytes < 1 << 20,
        "peak buffer {} bytes",
        report.peak_buffer_bytes
    );
}

/// A TCP relay that can go silent: `partition` closes the server side of every open
/// connection and leaves the publisher's side open but mute, as a dead network path does.
/// Later connections are relayed normally.
struct Relay {
    addr: SocketAddr,
    partition: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (partition, watch) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let generation = *watch.borrow();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let relay = async {
                        tokio::select! {
                            _ = tokio::io::copy(&mut cr, &mut sw) => {}
                            _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        }
                    };
                    let partitioned = tokio::select! {
                        () = relay => false,
                        () = async { let _ = watch.wait_for(|g| *g > generation).await; } => true,
                    };
                    if partitioned {
                        drop((sr, sw));
                        // Keep the publisher's side open and silent.
                        std::future::pending::<()>().await;
                    }
                });
            }
        });
        Self { addr, partition }
    }

    fn partition(&self) {
        self.partition.send_modify(|g| *g += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_path_is_detected_and_resumed_without_loss() {
    let (_dir, ingest) = ingest_with(|_| {}).await;
    let relay = Relay::start(ingest.local_addrs()[0]).await;
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/mute", relay.addr)).unwrap();
    let mut config = SessionConfig::new(url);
    config.link.ack_timeout = Duration::from_secs(1);
    config.reconnect.initial_delay = Duration::from_millis(200);
    let tags = sample_tags();
    let (sender, receiver) = session::packet_channel(256);
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let feeder = feed_live(tags.clone(), sender, 2.0);
    let session = tokio::spawn(session::run(config, receiver, Some(event_tx)));
    wait_until_async(
        "100 frames of mute at the ingest",
        Duration::from_secs(10),
        || {
            ingest
                .stats()
                .get("mute")
                .is_some_and(|s| s.frames_received >= 100)
        },
    )
    .await;
    relay.partition();
    let partitioned = Instant::now();
    let detected = loop {
        match event_rx
            .recv()
            .await
            .expect("the session ended without noticing")
        {
            SessionEvent::ConnectionLost { error } => break (partitioned.elapsed(), error),
            _ => continue,
        }
    };
    // Far sooner than the OS gives up on a silent peer (many minutes), and while the stream
    // still runs (7.5 s of it remain).
    assert!(
        detected.0 < Duration::from_secs(7),
        "noticed after {:?}",
        detected.0
    );
    assert!(detected.1.contains("stalled"), "{}", detected.1);
    let report = session.await.unwrap().expect("session failed");
    feeder.join().unwrap();
    let stats = wait_for_recording(&ingest, "mute").await;
    let comparison = compare(&tags, &read_flv(&stats.path));
    assert!(comparison.is_lossless(), "{comparison:?}");
    assert!(report
        .cutovers
        .iter()
        .any(|c| c.cause == Cause::ConnectionLost && c.kind == CutoverKind::Resumed));
}

/// Waits until the recording at `path` holds media (past its header and first tags): its
/// publisher is live and streaming.
fn wait_for_media(path: &std::path::Path) {
    wait_until(
        format!("media in {}", path.display()),
        Duration::from_secs(20),
        || std::fs::metadata(path).is_ok_and(|m| m.len() > 64 * 1024),
    );
}

/// `goaway serve` and `goaway publish` as a user runs them; returns the publisher's stderr
/// and the serve process's stderr.
fn cli_move(serve_args: &[&str], key: &str, signal_usr1: bool) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let serve = Command::new(GOAWAY)
        .args(["serve", "--listen", &addr, "--record"])
        .arg(dir.path())
        .args(serve_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut serve = Guard(serve);
    wait_for_port(port);
    let publisher = Command::new(GOAWAY)
        .args([
            "publish",
            "--realtime",
            "--speed",
            "4",
            SAMPLE,
            &format!("rtmp://{addr}/live/{key}"),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if signal_usr1 {
        wait_for_media(&dir.path().join(format!("{key}.flv")));
        let status = Command::new("kill")
            .args(["-USR1", &serve.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let output = publisher.wait_with_output().unwrap();
    let publisher_stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "publish failed: {publisher_stderr}"
    );
    // The publisher ended when the server closed the connection after its FIN: the
    // recording is complete.
    let status = Command::new("kill")
        .args(["-INT", &serve.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut serve_stderr = String::new();
    use std::io::Read;
    serve
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut serve_stderr)
        .unwrap();
    let comparison = compare(
        &sample_tags(),
        &read_flv(&dir.path().join(format!("{key}.flv"))),
    );
    assert!(comparison.is_lossless(), "{comparison:?}");
    (publisher_stderr, serve_stderr)
}

#[test]
fn cli_ingest_moves_a_cli_publisher_on_sigusr1() {
    let (publisher, serve) = cli_move(&[], "usr1", true);
    assert!(
        serve.contains("SIGUSR1: signalled 1 publisher(s)"),
        "{serve}"
    );
    assert!(publisher.contains("server sent go-away"), "{publisher}");
    assert!(
        publisher.contains("moved (make-before-break)"),
        "{publisher}"
    );
}

#[test]
fn cli_ingest_schedules_reconnect_requests() {
    let (publisher, _) = cli_move(
        &["--goaway-after", "1", "--signal", "reconnect-request"],
        "sched",
        false,
    );
    assert!(
        publisher.contains("server sent reconnect-request"),
        "{publisher}"
    );
    assert!(
        publisher.contains("moved (make-before-break)"),
        "{publisher}"
    );
}

/// A bare-bones server built on the sans-IO [`ServerSession`]: accepts every connect and
/// publish and, on the first connection after 30 media messages, sends Go Away, a Reconnect
/// Request and Go Away again at once; with `signal_second`, the second connection gets Go
/// Away as soon as it publishes (while it is still the standby). Returns how many
/// connections published.
async fn noisy_server(listener: tokio::net::TcpListener, signal_second: bool) -> usize {
    use obs_goaway::protocol::{ServerEvent, ServerSession, Transmit};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut connections = 0;
    loop {
        let accepted = tokio::time::timeout(Duration::from_secs(3), listener.accept()).await;
        let Ok(Ok((mut socket, _))) = accepted else {
            return connections;
        };
        connections += 1;
        let first = connections == 1;
        let second = connections == 2;
        tokio::spawn(async move {
            let mut session = ServerSession::new(0, b"noisy");
            let mut buf = vec![0u8; 65536];
            let mut media = 0;
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if session.handle_input(&buf[..n]).is_err() {
                    return;
                }
                while let Some(event) = session.poll_event() {
                    match event {
                        ServerEvent::ConnectRequested { .. } => session.accept_connect(),
                        ServerEvent::PublishRequested { .. } => {
                            session.accept_publish();
                            if second && signal_second {
                                session.send_go_away();
                            }
                        }
                        ServerEvent::Media(_) => {
                            media += 1;
                            if first && media == 30 {
                                session.send_go_away();
                                session.send_reconnect_request(None, "again");
                                session.send_go_away();
                            }
                        }
                        _ => {}
                    }
                }
                let mut slices = [std::io::IoSlice::new(&[]); 64];
                let count = session.io_slices(&mut slices);
                let out: Vec<u8> = slices[..count]
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                if socket.write_all(&out).await.is_err() {
                    return;
                }
                session.advance(out.len());
            }
        });
    }
}

/// Publishes 3 s of synthetic media to a [`noisy_server`]; returns the session's report and
/// how many connections the server saw.
async fn publish_to_noisy_server(key: &str, signal_second: bool) -> (Report, usize) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = RtmpUrl::parse(&format!(
        "rtmp://{}/live/{key}",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    let server = tokio::spawn(noisy_server(listener, signal_second));
    let (sender, receiver) = session::packet_channel(256);
    let feeder = feed_live(synthetic(3000, 500, true, true), sender, 10.0);
    let report = session::run(SessionConfig::new(url), receiver, None)
        .await
        .unwrap();
    feeder.join().unwrap();
    (report, server.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_during_a_move_are_coalesced() {
    let (report, connections) = publish_to_noisy_server("noisy", false).await;
    assert_eq!(
        report.cutovers.len(),
        1,
        "three signals, one move: {:?}",
        report.cutovers
    );
    assert_eq!(connections, 2, "one new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_from_the_new_server_moves_the_stream_again_after_the_switch() {
    let (report, connections) = publish_to_noisy_server("twice", true).await;
    assert_eq!(report.cutovers.len(), 2, "{:?}", report.cutovers);
    assert_eq!(connections, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_over_ipv6_loopback() {
    let (_dir, ingest) = ingest_with(|c| c.listeners[0].addr = "[::1]:0".parse().unwrap()).await;
    assert!(ingest.local_addrs()[0].is_ipv6());
    let outcome = publish(
        &ingest,
        "six",
        synthetic(4000, 500, true, true),
        4.0,
        &[(Duration::from_millis(400), SignalKind::GoAway)],
        |_| {},
    )
    .await;
    assert_lossless(&outcome);
    assert_eq!(outcome.report.cutovers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_over_rtmps_on_the_reference_ingest() {
    use obs_goaway::ingest::ListenerConfig;
    use obs_goaway::transport::tls;
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(certs.path());
    let server_tls = tls::server_config(&cert, &key).unwrap();
    let (_dir, ingest) = ingest_with(|c| {
        c.listeners = vec![ListenerConfig {
            addr: loopback(),
            tls: Some(server_tls),
        }];
    })
    .await;
    let url = RtmpUrl::parse(&format!("rtmps://{}/live/tls", ingest.local_addrs()[0])).unwrap();
    let mut config = SessionConfig::new(url);
    config.link.tls = Some(tls::client_config(Some(&ca)).unwrap());
    let tags = synthetic(4000, 500, true, true);
    let (sender, receiver) = session::packet_channel(256);
    let feeder = feed_live(tags.clone(), sender, 4.0);
    let session = tokio::spawn(session::run(config, receiver, None));
    wait_until_async(
        "the publisher of tls at the ingest",
        Duration::from_secs(10),
        || ingest.publishers("tls") > 0,
    )
    .await;
    assert_eq!(ingest.signal_all(Some(SignalKind::ReconnectRequest)), 1);
    let report = session.await.unwrap().unwrap();
    feeder.join().unwrap();
    let stats = wait_for_recording(&ingest, "tls").await;
    assert!(compare(&tags, &read_flv(&stats.path)).is_lossless());
    assert_eq!(report.cutovers.len(), 1);
    assert_eq!(stats.duplicates, 0);
}

/// The publisher's credentials, the only user of [`require_auth`]'s ingests.
fn obs_user() -> Credentials {
    Credentials::new("obs", "s3cret!")
}

fn require_auth(config: &mut IngestConfig) {
    config.auth = Some(AuthConfig {
        method: AuthMethod::Adobe,
        users: vec![obs_user()],
    });
}

fn with_credentials(config: &mut SessionConfig) {
    config.url = config.url.clone().with_credentials(Some(obs_user()));
}

/// An ingest that requires authentication only accepts authenticated connections, so every
/// move that completes proves the new connection authenticated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_away_with_authentication_reauthenticates_and_loses_nothing() {
    let (_dir, ingest) = ingest_with(require_auth).await;
    let outcome = publish(
        &ingest,
        "auth",
        sample_tags(),
        4.0,
        &[
            (Duration::from_millis(1000), SignalKind::GoAway),
            (Duration::from_millis(3000), SignalKind::ReconnectRequest),
        ],
        with_credentials,
    )
    .await;
    assert_lossless(&outcome);
    assert_eq!(outcome.report.connections, 3);
    assert!(outcome
        .report
        .cutovers
        .iter()
        .all(|c| c.kind == CutoverKind::MakeBeforeBreak));
    assert_eq!(outcome.stats.connections, 3);
    assert_eq!(outcome.stats.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_drops_with_authentication() {
    let (_dir, ingest) = ingest_with(|c| {
        require_auth(c);
        c.drop_after = Some(Duration::from_millis(1500));
    })
    .await;
    let outcome = publish(&ingest, "drops", sample_tags(), 4.0, &[], |c| {
        with_credentials(c);
        c.reconnect.initial_delay = Duration::from_millis(100);
    })
    .await;
    assert_lossless(&outcome);
    assert!(outcome.report.cutovers.len() >= 2, "{:?}", outcome.report);
    assert!(outcome
        .report
        .cutovers
        .iter()
        .all(|c| c.cause == Cause::ConnectionLost && c.kind == CutoverKind::Resumed));
}

/// A resume asks the service again where its server is (Twitch's "auto" follows OBS's
/// ingest list at every connection): the stream goes on where the service points now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_goes_where_the_service_points_now() {
    let (_dir_b, b) = ingest_with(|_| {}).await;
    let (_dir_a, a) = ingest_with(|c| c.drop_after = Some(Duration::from_millis(1500))).await;
    let b_url = RtmpUrl::parse(&format!("rtmp://{}/live/resolved", b.local_addrs()[0])).unwrap();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let tags = sample_tags();
    let outcome = publish(&a, "resolved", tags.clone(), 4.0, &[], move |c| {
        c.resolve = Some(session::Resolver(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(b_url.clone())
        })));
    })
    .await;
    let on_b = wait_for_recording(&b, "resolved").await;
    let mut recorded = read_flv(&outcome.stats.path);
    recorded.extend(read_flv(&on_b.path));
    // B starts at the keyframe before what A had not acknowledged: repeats, nothing lost.
    let joined = compare(&tags, &recorded);
    assert_eq!((joined.lost, joined.foreign), (0, 0), "{joined:?}");
    assert_eq!(outcome.stats.connections, 1, "the resume went back to A");
    assert_eq!(on_b.connections, 1);
    // Not for the first connection (its owner had just resolved it), once for the resume.
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

/// Credentials follow a redirect to another host (see `RtmpUrl::resolve_reconnect`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_takes_the_credentials_to_the_next_ingest() {
    let (_dir_b, b) = ingest_with(require_auth).await;
    let b_addr = b.local_addrs()[0];
    let (_dir_a, a) = ingest_with(|c| {
        require_auth(c);
        c.redirect = Some(format!("rtmp://{b_addr}/live"));
    })
    .await;
    let tags = sample_tags();
    let outcome = publish(
        &a,
        "redirected",
        tags.clone(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::ReconnectRequest)],
        with_credentials,
    )
    .await;
    let on_b = wait_for_recording(&b, "redirected").await;
    let mut recorded = read_flv(&outcome.stats.path);
    recorded.extend(read_flv(&on_b.path));
    let joined = compare(&tags, &recorded);
    assert!(joined.is_lossless(), "{joined:?}");
    assert_eq!(on_b.connections, 1);
    assert_eq!(
        outcome.report.cutovers[0].kind,
        CutoverKind::MakeBeforeBreak
    );
}

/// A move to a server that refuses the password stays on the current connection: retrying
/// cannot fix a password, and the stream goes on where it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_a_server_refusing_the_password_keeps_streaming_where_it_is() {
    let (_dir_b, b) = ingest_with(|c| {
        c.auth = Some(AuthConfig {
            method: AuthMethod::Adobe,
            users: vec![Credentials::new("obs", "another password")],
        });
    })
    .await;
    let b_addr = b.local_addrs()[0];
    let (_dir_a, a) = ingest_with(|c| {
        require_auth(c);
        c.redirect = Some(format!("rtmp://{b_addr}/live"));
    })
    .await;
    let outcome = publish(
        &a,
        "stays",
        sample_tags(),
        4.0,
        &[(Duration::from_millis(1200), SignalKind::ReconnectRequest)],
        with_credentials,
    )
    .await;
    assert_lossless(&outcome);
    assert!(outcome
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::MoveRequested { .. })));
    assert!(outcome.report.cutovers.is_empty());
    assert_eq!(outcome.report.connections, 1);
    assert_eq!(b.publishers("stays"), 0);
}
