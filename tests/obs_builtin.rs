//! Real OBS Studio (29.0.2 on the host, 32.2.2 in the Debian sid root) streaming with its
//! built-in RTMP output to the reference ingest: proves the OBS test harness
//! (`common::obs`) and measures what OBS's own output loses when an ingest goes away.
//!
//! Needs root, obs-studio, xvfb, ffmpeg and the sid root (`.ci/sid-root.sh`); each OBS run
//! takes the machine-wide OBS lock, so these tests run one OBS at a time.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::obs::{
    authenticating_ingest, ingest_runtime as runtime, loopback_ingest, received, rtmp_custom,
    run_outage_scenario, with_auth, ObsVersion, OnStart, PluginInstall, ProfileBuilder,
    ScenarioOutcome, AUTH_PASSWORD, SCENARIO_KEY,
};
use common::{
    ffprobe_decoded_frames, frame_counts, free_port, read_flv, wait_until, within,
    AUDIO_FRAMES_PER_SECOND,
};

/// OBS streams ~8 s to the ingest with rtmp_custom; the recording is complete and decodes.
fn streams_to_the_reference_ingest(version: ObsVersion) {
    version.require();
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (ingest, server) = loopback_ingest(&runtime, dir.path());
    let profile = ProfileBuilder::new(version)
        .service(rtmp_custom(&server, SCENARIO_KEY))
        .build();
    let fps = profile.fps();
    let mut obs = profile.start(OnStart::Stream);
    obs.wait_for_log("==== Streaming Start", Duration::from_secs(30));
    let streaming = Instant::now();
    let started_after = obs.elapsed();
    wait_until(
        format!("{version}: 8 s of stream at the ingest"),
        Duration::from_secs(60),
        || received(&ingest) >= 8 * (u64::from(fps) + AUDIO_FRAMES_PER_SECOND),
    );
    let exit = obs.stop();
    let streamed = streaming.elapsed();

    exit.assert_clean("exit");
    assert!(
        exit.log.contains(&format!("OBS {}", version.version())),
        "{version}: not the expected OBS\n{}",
        exit.log
    );
    assert!(
        exit.log.contains("[rtmp stream: ") && exit.log.contains("==== Streaming Start"),
        "{version}: OBS's built-in RTMP output did not stream\n{}",
        exit.log
    );
    let stats = ingest
        .stats()
        .remove(SCENARIO_KEY)
        .expect("no stream at the ingest");
    let tags = read_flv(&stats.path);
    let (video, audio) = frame_counts(&tags);
    let (decoded_video, decoded_audio) = ffprobe_decoded_frames(&stats.path);
    eprintln!(
        "{version}: streaming {:.2}s after start, streamed {:.2}s, {} connection(s); \
         recorded {video} video / {audio} audio frames, ffprobe decoded {decoded_video} / \
         {decoded_audio}; quit ({}) took {:.2}s",
        started_after.as_secs_f32(),
        streamed.as_secs_f32(),
        stats.connections,
        exit.quit,
        exit.shutdown.as_secs_f32()
    );
    assert!(video > 100, "{version}: only {video} video frames recorded");
    assert!(audio > 100, "{version}: only {audio} audio frames recorded");
    assert!(
        decoded_video > 100 && decoded_audio > 100,
        "{version}: ffprobe decoded only {decoded_video} video / {decoded_audio} audio frames"
    );
    assert_eq!(stats.connections, 1, "{version}: OBS reconnected");
}

#[test]
fn obs_29_builtin_output_streams_to_the_reference_ingest() {
    streams_to_the_reference_ingest(ObsVersion::Host);
}

#[test]
fn obs_32_builtin_output_streams_to_the_reference_ingest() {
    streams_to_the_reference_ingest(ObsVersion::Sid);
}

/// OBS's own output with "Use authentication" (librtmp's adobe challenge-response) streams
/// to the reference ingest requiring it: the ingest's server side against the client OBS
/// users have today. librtmp connects without credentials first, as FFmpeg does.
fn authenticates_to_the_reference_ingest(version: ObsVersion) {
    version.require();
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let ingest = authenticating_ingest(&runtime, dir.path());
    let server = format!("rtmp://{}/live", ingest.local_addrs()[0]);
    let profile = ProfileBuilder::new(version)
        .service(with_auth(rtmp_custom(&server, SCENARIO_KEY), AUTH_PASSWORD))
        .build();
    let fps = profile.fps();
    let mut obs = profile.start(OnStart::Stream);
    obs.wait_for_log("==== Streaming Start", Duration::from_secs(30));
    wait_until(
        format!("{version}: 4 s of stream at the ingest"),
        Duration::from_secs(60),
        || received(&ingest) >= 4 * (u64::from(fps) + AUDIO_FRAMES_PER_SECOND),
    );
    let exit = obs.stop();
    exit.assert_clean("exit");
    let stats = ingest
        .stats()
        .remove(SCENARIO_KEY)
        .unwrap_or_else(|| panic!("{version}: nothing published\n{}", exit.log));
    let (video, audio) = frame_counts(&read_flv(&stats.path));
    assert!(
        video > 50 && audio > 50,
        "{version}: only {video} video / {audio} audio frames recorded"
    );
    assert_eq!(stats.connections, 1, "{version}: OBS reconnected");
    assert!(
        !exit.log.contains(AUTH_PASSWORD),
        "{version}: the password is in OBS's log"
    );
}

#[test]
fn obs_29_builtin_output_authenticates_to_the_reference_ingest() {
    authenticates_to_the_reference_ingest(ObsVersion::Host);
}

#[test]
fn obs_32_builtin_output_authenticates_to_the_reference_ingest() {
    authenticates_to_the_reference_ingest(ObsVersion::Sid);
}

/// obs-websocket answers GetVersion and GetStreamServiceSettings (OBS idle, not streaming);
/// a screenshot of the display shows OBS's window.
fn websocket_answers(version: ObsVersion) {
    version.require();
    let runtime = runtime();
    let port = free_port();
    let server = "rtmp://127.0.0.1:1/live";
    let profile = ProfileBuilder::new(version)
        .service(rtmp_custom(server, SCENARIO_KEY))
        .websocket(port)
        .build();
    let obs = profile.start(OnStart::Idle);
    let (obs_version, rpc, service) = runtime.block_on(async {
        let mut ws = obs
            .websocket(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}\n{}", obs.log()));
        let got = ws.request("GetVersion", serde_json::Value::Null).await;
        let got = got.unwrap_or_else(|e| panic!("{version}: {e}"));
        let service = ws
            .request("GetStreamServiceSettings", serde_json::Value::Null)
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        let bad = ws.request("NoSuchRequest", serde_json::Value::Null).await;
        assert!(
            bad.is_err(),
            "{version}: an unknown request succeeded: {bad:?}"
        );
        (
            got["obsVersion"].clone(),
            got["rpcVersion"].clone(),
            service,
        )
    });
    let ready_after = obs.elapsed();
    let title = format!("OBS {}", version.version());
    let window = obs.wait_for_window(&title, Duration::from_secs(20));
    assert!(window.is_some(), "{version}: no window titled {title:?}");
    // OBS paints its window shortly after mapping it: a blank display compresses to a
    // few hundred bytes, a painted one to well over 10 kB.
    let shot = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    let mut png = Vec::new();
    let painted = within(Duration::from_secs(20), || {
        obs.screenshot(shot.path());
        png = std::fs::read(shot.path()).unwrap();
        png.len() > 10_000
    });
    assert!(
        png.starts_with(b"\x89PNG") && painted,
        "{version}: screenshot of {} bytes",
        png.len()
    );
    let exit = obs.stop();
    eprintln!(
        "{version}: obs-websocket ready {:.2}s after start: obsVersion {obs_version}, \
         rpcVersion {rpc}, service {service}",
        ready_after.as_secs_f32()
    );
    assert_eq!(obs_version, version.version(), "{version}");
    assert_eq!(rpc, 1, "{version}");
    assert_eq!(
        service["streamServiceType"], "rtmp_custom",
        "{version}: {service}"
    );
    assert_eq!(
        service["streamServiceSettings"]["server"], server,
        "{version}: {service}"
    );
    exit.assert_clean("exit");
    assert!(
        !exit.log.contains("==== Streaming Start"),
        "{version}: OBS streamed without --startstreaming\n{}",
        exit.log
    );
}

#[test]
fn obs_29_websocket_answers_requests() {
    websocket_answers(ObsVersion::Host);
}

#[test]
fn obs_32_websocket_answers_requests() {
    websocket_answers(ObsVersion::Sid);
}

/// OBS's built-in output through Go Away (6 s), a Reconnect Request to ingest B (12 s) and
/// a 3 s outage of both ingests (18 s), streaming 25 s: it never moves, loses what it
/// produced while disconnected and restarts its timestamps on reconnecting.
fn builtin_output_loses_video_in_an_outage(version: ObsVersion) -> ScenarioOutcome {
    let outcome = run_outage_scenario(version, |server| rtmp_custom(server, SCENARIO_KEY), |p| p);
    eprintln!("{outcome}");
    let exit = &outcome.exit;
    exit.assert_clean("exit");
    // It streamed to A until the outage, then OBS's own reconnect brought it back to A.
    let [a, b] = &outcome.ingests[..] else {
        unreachable!("two ingests")
    };
    let a_stats = a.stats.as_ref().expect("OBS never published to A");
    assert_eq!(
        a_stats.connections, 2,
        "{version}: one connection before the outage, one after"
    );
    assert!(b.stats.is_none(), "{version}: OBS moved to B");
    assert_eq!(
        exit.total_frames_output().len(),
        2,
        "{version}: OBS's reconnect restarts the output\n{}",
        exit.log
    );
    assert!(
        outcome.timestamps_restarted,
        "{version}: OBS's reconnect starts its timestamps at 0 again"
    );
    // The losses, measured three ways: each more than a second of the 3 s outage.
    let fps = 30;
    assert!(
        outcome.video_lost_by_clock > fps,
        "{version}: the recording lacks only {} frames",
        outcome.video_lost_by_clock
    );
    assert!(
        outcome.video_lost_by_obs_count > fps,
        "{version}: OBS sent all but {} frames",
        outcome.video_lost_by_obs_count
    );
    assert!(
        outcome.longest_stall > Duration::from_secs(1),
        "{version}: the ingests went without frames for only {:?}",
        outcome.longest_stall
    );
    outcome
}

#[test]
fn obs_29_builtin_output_loses_video_in_an_outage() {
    let outcome = builtin_output_loses_video_in_an_outage(ObsVersion::Host);
    // 29.0.2 still announces supportsGoAway, so A sends Go Away; it stays put anyway.
    assert_eq!(outcome.signals_sent, 1, "29.0.2 announces supportsGoAway");
}

#[test]
fn obs_32_builtin_output_loses_video_in_an_outage() {
    let outcome = builtin_output_loses_video_in_an_outage(ObsVersion::Sid);
    // 32.2.2 announces neither Go Away nor Reconnect Request: the ingests signal nothing.
    assert_eq!(outcome.signals_sent, 0, "32.2.2 announces no move support");
}

/// A plugin given to the profile builder is installed where OBS loads it from: a copy of
/// OBS's own linux-v4l2 module under another name shows up among the loaded modules.
fn loads_a_plugin_from_the_profile(version: ObsVersion) {
    version.require();
    let system_plugins = Path::new("usr/lib/x86_64-linux-gnu/obs-plugins/linux-v4l2.so");
    let so = version
        .root()
        .unwrap_or_else(|| "/".into())
        .join(system_plugins);
    let locale = Path::new(env!("CARGO_MANIFEST_DIR")).join("locale");
    let profile = ProfileBuilder::new(version)
        .plugin(PluginInstall {
            name: "harness-probe".into(),
            so,
            locale: Some(locale),
        })
        .build();
    let installed = profile
        .config_dir()
        .join("plugins/harness-probe/bin/64bit/harness-probe.so");
    assert!(installed.exists(), "{}", installed.display());
    let mut obs = profile.start(OnStart::Idle);
    obs.wait_for_log("Loaded Modules:", Duration::from_secs(30));
    obs.wait_for_log("harness-probe.so", Duration::from_secs(5));
    let exit = obs.stop();
    exit.assert_clean("exit");
}

#[test]
fn obs_29_loads_a_plugin_from_the_profile() {
    loads_a_plugin_from_the_profile(ObsVersion::Host);
}

#[test]
fn obs_32_loads_a_plugin_from_the_profile() {
    loads_a_plugin_from_the_profile(ObsVersion::Sid);
}
