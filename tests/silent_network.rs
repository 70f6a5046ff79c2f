//! Networks that die silently (issue 15) and servers that never acknowledge (issue 16).
//!
//! The namespace tests run the CLI publisher and the reference ingest in network namespaces
//! (tests/common/netns.rs) and need root. They assert what the product guarantees: nothing
//! lost or corrupt while the buffer covers the outage, a silent path noticed within about a
//! second, a stall that outlasts the fault by little, no reconnection on a slow link that
//! still acknowledges. The bounds leave room for a loaded machine; benches/silent_network.rs
//! prints the exact figures against the goal (the silence plus 0.5 s).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::read_flv;
use common::silent::{self, Case, Measured};
use obs_goaway::ingest::{Ingest, IngestConfig};
use obs_goaway::media::compare::compare;
use obs_goaway::session::{self, SessionConfig};
use obs_goaway::transport::RtmpUrl;

fn run(name: &str) -> Measured {
    let measured = silent::run(&Case::named(name));
    eprintln!(
        "{}\n{}\npublisher:\n{}",
        Measured::header(&["case"]),
        measured.row(&[name]),
        measured.log
    );
    measured
}

/// Resumed without corruption and without losing anything the buffer held.
fn assert_resumed_within_the_buffer(m: &Measured) {
    assert!(m.publisher_ok, "the publisher failed:\n{}", m.log);
    assert!(!m.corrupt, "foreign or reordered frames:\n{}", m.log);
    assert_eq!(m.lost, 0, "frames lost to the buffer:\n{}", m.log);
    assert_eq!(m.video_missing, 0, "video missing:\n{}", m.log);
}

/// The stall outlasts the fault by less than this here (the goal is 0.5 s; the bench
/// prints the figures; loaded machines add scheduling delay).
const STALL_SLACK: Duration = Duration::from_millis(1500);

fn assert_stall_within(m: &Measured, fault: Duration) {
    assert!(
        m.longest_stall <= fault + STALL_SLACK,
        "stalled {:?} for a {fault:?} fault:\n{}",
        m.longest_stall,
        m.log
    );
}

#[test]
fn silent_3_s_loses_nothing_and_stalls_about_the_silence() {
    let m = run("silent 3 s");
    assert_resumed_within_the_buffer(&m);
    assert!(m.longest_stall >= Duration::from_secs(2), "{m:?}");
    assert_stall_within(&m, Duration::from_secs(3));
}

#[test]
fn silent_12_s_is_found_within_about_a_second_and_loses_nothing() {
    let m = run("silent 12 s");
    assert_resumed_within_the_buffer(&m);
    assert!(m.connections >= 2, "never reconnected:\n{}", m.log);
    let detected = m.time_to_detect.expect("the silence was never noticed");
    assert!(
        detected <= Duration::from_secs(2),
        "silence noticed after {detected:?}:\n{}",
        m.log
    );
    assert_stall_within(&m, Duration::from_secs(12));
}

#[test]
fn silent_25_s_resumes_from_the_buffer_and_loses_nothing() {
    let m = run("silent 25 s");
    assert_resumed_within_the_buffer(&m);
    assert!(m.connections >= 2, "never reconnected:\n{}", m.log);
    assert_stall_within(&m, Duration::from_secs(25));
}

#[test]
fn a_path_change_moves_to_the_new_path_at_once() {
    let m = run("path change");
    assert_resumed_within_the_buffer(&m);
    assert!(m.connections >= 2, "never reconnected:\n{}", m.log);
    assert_stall_within(&m, Duration::ZERO);
}

#[test]
fn a_silence_longer_than_the_buffer_loses_only_the_oldest_and_continues() {
    let m = run("silent 12 s, 4 s buffer");
    assert!(!m.corrupt, "foreign or reordered frames:\n{}", m.log);
    assert!(m.connections >= 2, "never reconnected:\n{}", m.log);
    assert!(m.lost > 0, "a 12 s silence fit a 4 s buffer?\n{}", m.log);
    assert!(
        m.video_missing <= u64::from(silent::FPS) * 12,
        "{} video frames missing, more than the silence:\n{}",
        m.video_missing,
        m.log
    );
    // Past the buffer the race goes on, a fresh connection every second (not one attempt
    // in TCP's SYN backoff, seconds past the path's return).
    assert_stall_within(&m, Duration::from_secs(12 + 1));
}

#[test]
fn a_link_at_half_the_bitrate_never_reconnects() {
    let m = run("tbf half rate 10 s");
    assert!(!m.corrupt, "foreign or reordered frames:\n{}", m.log);
    assert_eq!(m.connections, 1, "reconnected on a slow link:\n{}", m.log);
    assert!(m.time_to_detect.is_none(), "{}", m.log);
    assert_eq!(m.lost, 0, "frames lost to the buffer:\n{}", m.log);
    // The CLI drops nothing (its session has no congestion thresholds): the backlog
    // waits and is sent once the link is fast again.
    assert_eq!(m.video_missing, 0, "video missing:\n{}", m.log);
}

/// Issue 16 item 5: against a server that never sends Acknowledgement, TCP's own
/// acknowledgements prove delivery, so the resume buffer keeps releasing: its peak stays
/// near a group of pictures instead of growing with the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_acknowledges_does_not_grow_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    config.no_acknowledgements = true;
    let ingest = Ingest::start(config).await.unwrap();
    let tags = read_flv(&silent::input());
    let total: usize = tags.iter().map(|t| t.data.len()).sum();
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/mute", ingest.local_addrs()[0])).unwrap();
    let config = SessionConfig::new(url);
    let (sender, receiver) = session::packet_channel(256);
    let feeder = common::feed_live(tags.clone(), sender, 4.0);
    let report = session::run(config, receiver, None)
        .await
        .expect("session failed");
    feeder.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ingest.publishers("mute") > 0 {
        assert!(Instant::now() < deadline, "the publisher never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = ingest.stats().remove("mute").expect("nothing recorded");
    let comparison = compare(&tags, &read_flv(&stats.path));
    assert!(comparison.is_lossless(), "{comparison:?}");
    // Without a delivery signal the buffer would hold the stream up to its 30 s limit:
    // three quarters of these 40 s.
    eprintln!(
        "resume buffer peak: {} of the stream's {total} bytes",
        report.peak_buffer_bytes
    );
    assert!(
        report.peak_buffer_bytes < total / 8,
        "the buffer peaked at {} of the stream's {total} bytes",
        report.peak_buffer_bytes
    );
}

/// A link reads its socket's TCP state for the session to poll: on Linux the handshake and
/// publish sequence already show as acknowledged bytes, a round-trip time, nothing waiting.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_reports_its_tcp_delivery_state() {
    use obs_goaway::transport::{establish, LinkOptions, PathState, PathWatch, SilenceRule};
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    let ingest = Ingest::start(config).await.unwrap();
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/probe", ingest.local_addrs()[0])).unwrap();
    let options = LinkOptions::default();
    let link = establish(&url, &options).await.unwrap().spawn(&options);
    let deadline = Instant::now() + Duration::from_secs(5);
    let sample = loop {
        if let Some(sample) = link.delivery().filter(|s| s.stats.unacked_bytes == Some(0)) {
            break sample;
        }
        assert!(
            Instant::now() < deadline,
            "no settled TCP reading within 5 s: {:?}",
            link.delivery()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(sample.stats.bytes_acked.unwrap() > 3000, "{sample:?}");
    assert!(sample.stats.rtt.is_some(), "{sample:?}");
    let mut watch = PathWatch::new(SilenceRule::default());
    assert_eq!(
        watch.observe(sample.at.into_std(), &sample.stats),
        PathState::Idle
    );
}
