//! Turning the plugin on and off and switching servers in real OBS (29.0.2 on the host, 32.2.2
//! in the Debian sid root), only through obs-websocket, as a script or remote control would:
//! vendor `obs-goaway` requests `Enable`, `SwitchServer`, `GetStatus`, `Disable`, next to
//! obs-websocket's own stream requests.
//!
//! Needs what tests/obs_plugin.rs needs (root, obs-studio, xvfb, the sid root, the release
//! build of the plugin).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::obs::{
    loopback_ingest, received, rtmp_custom, ObsVersion, ObsWebSocket, OnStart, PluginInstall,
    ProfileBuilder, SCENARIO_KEY,
};
use common::{free_port, read_flv, wait_until_async, AUDIO_FRAMES_PER_SECOND};
use obs_goaway::ingest::{Ingest, IngestConfig};
use obs_goaway::media::TagKind;
use serde_json::{json, Value};

/// A key for the listed service: never sent anywhere (the test does not stream there).
const YOUTUBE_KEY: &str = "yt-test-key-0000-1111";
const YOUTUBE_SERVER: &str = "rtmps://a.rtmps.youtube.com:443/live2";

/// Calls `obs-goaway`'s `request`; `data` is left out when empty (obs-websocket refuses an
/// empty `requestData`).
async fn vendor(ws: &mut ObsWebSocket, request: &str, data: Value) -> Value {
    let mut call = json!({"vendorName": "obs-goaway", "requestType": request});
    if data.as_object().is_some_and(|o| !o.is_empty()) {
        call["requestData"] = data;
    }
    let response = ws
        .request("CallVendorRequest", call)
        .await
        .unwrap_or_else(|e| panic!("{request}: {e}"));
    response["responseData"].clone()
}

async fn service(ws: &mut ObsWebSocket) -> Value {
    ws.request("GetStreamServiceSettings", Value::Null)
        .await
        .unwrap()
}

/// Makes OBS write service.json itself (its own formatting) and returns the bytes, so that
/// "restored exactly" can be checked byte for byte.
async fn set_service(
    ws: &mut ObsWebSocket,
    profile_dir: &std::path::Path,
    kind: &str,
    settings: Value,
) -> Vec<u8> {
    ws.request(
        "SetStreamServiceSettings",
        json!({"streamServiceType": kind, "streamServiceSettings": settings}),
    )
    .await
    .unwrap();
    std::fs::read(profile_dir.join("service.json")).unwrap()
}

/// Asks until both OBS (`GetStreamStatus`) and the plugin (`GetStatus`) say no stream runs.
async fn wait_until_not_streaming(ws: &mut ObsWebSocket, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let obs = ws.request("GetStreamStatus", Value::Null).await.unwrap();
        let ours = vendor(ws, "GetStatus", json!({})).await;
        if obs["outputActive"] == false && ours["streaming"] == false {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} for the stream to end: OBS {obs}, obs-goaway {ours}"
        );
        // Ask again shortly.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Video frames missing between consecutive timestamps of both recordings together, and
/// video timestamps present more than once (in one recording or in both).
fn lost_and_duplicated(recordings: &[Vec<obs_goaway::media::Tag>], fps: u32) -> (u64, u64, usize) {
    let video: Vec<u32> = recordings
        .iter()
        .flatten()
        .filter(|t| t.kind == TagKind::Video && t.is_frame())
        .map(|t| t.timestamp)
        .collect();
    let unique: BTreeSet<u32> = video.iter().copied().collect();
    let interval = 1000.0 / f64::from(fps);
    let sorted: Vec<u32> = unique.iter().copied().collect();
    let lost = sorted
        .windows(2)
        .map(|w| f64::from(w[1] - w[0]))
        .filter(|gap| *gap > 1.5 * interval)
        .map(|gap| (gap / interval).round() as u64 - 1)
        .sum();
    (lost, (video.len() - unique.len()) as u64, unique.len())
}

fn enable_switch_disable(version: ObsVersion) {
    version.require();
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let ingest_a = runtime
        .block_on(Ingest::start(IngestConfig::new(
            loopback,
            dir.path().join("a"),
        )))
        .unwrap();
    let ingest_b = runtime
        .block_on(Ingest::start(IngestConfig::new(
            loopback,
            dir.path().join("b"),
        )))
        .unwrap();
    let server_a = format!("rtmp://{}/live", ingest_a.local_addrs()[0]);
    let server_b = format!("rtmp://{}/live", ingest_b.local_addrs()[0]);
    let port = free_port();
    let profile = ProfileBuilder::new(version)
        .service(rtmp_custom(&server_a, SCENARIO_KEY))
        .websocket(port)
        .plugin(PluginInstall::obs_goaway())
        .build();
    let profile_dir = profile.profile_dir();
    let fps = profile.fps();
    let obs = profile.start(OnStart::Idle);
    runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        let custom = json!({"server": server_a, "key": SCENARIO_KEY});
        let before_bytes = set_service(&mut ws, &profile_dir, "rtmp_custom", custom).await;
        let before = service(&mut ws).await;

        // Enable: our service, same destination, and the previous one kept for Disable.
        let enabled = vendor(&mut ws, "Enable", json!({})).await;
        assert_eq!(enabled["ok"], true, "{version}: Enable: {enabled}");
        assert!(!enabled["server"].as_str().unwrap().contains(SCENARIO_KEY));
        let ours = service(&mut ws).await;
        assert_eq!(ours["streamServiceType"], "goaway_rtmp_service", "{ours}");
        assert_eq!(ours["streamServiceSettings"]["server"], server_a.as_str());
        assert_eq!(ours["streamServiceSettings"]["key"], SCENARIO_KEY);
        let saved: Value =
            serde_json::from_slice(&std::fs::read(profile_dir.join("service.json")).unwrap())
                .unwrap();
        assert_eq!(
            saved["type"], "goaway_rtmp_service",
            "service.json: {saved}"
        );
        let again = vendor(&mut ws, "Enable", json!({})).await;
        assert_eq!(
            again["ok"], false,
            "a second Enable must say it is on already"
        );

        // Stream to A, then switch to B while live.
        ws.request("StartStream", Value::Null).await.unwrap();
        // Three seconds of stream at A before the switch.
        let three_seconds = 3 * (u64::from(fps) + AUDIO_FRAMES_PER_SECOND);
        wait_until_async("3 s of stream at A", Duration::from_secs(30), || {
            received(&ingest_a) > three_seconds
        })
        .await;
        let switched = vendor(&mut ws, "SwitchServer", json!({"url": server_b})).await;
        assert_eq!(switched["ok"], true, "{version}: SwitchServer: {switched}");
        wait_until_async("the move to B", Duration::from_secs(15), || {
            received(&ingest_b) > 0 && ingest_a.publishers(SCENARIO_KEY) == 0
        })
        .await;
        let two_seconds = 2 * (u64::from(fps) + AUDIO_FRAMES_PER_SECOND);
        wait_until_async("2 s of stream at B", Duration::from_secs(30), || {
            received(&ingest_b) > two_seconds
        })
        .await;
        let status = vendor(&mut ws, "GetStatus", json!({})).await;
        assert_eq!(status["ok"], true, "{status}");
        assert_eq!(status["enabled"], true, "{status}");
        assert_eq!(status["streaming"], true, "{status}");
        let moves = status["moves"].as_array().expect("moves");
        assert_eq!(moves.len(), 1, "{version}: {status}");
        assert_eq!(moves[0]["cause"], "user-request", "{status}");
        assert_eq!(moves[0]["kind"], "make-before-break", "{status}");
        assert_eq!(status["lost"], 0, "{status}");
        assert_eq!(status["duplicates"], 0, "{status}");
        assert!(
            status["server"].as_str().unwrap().starts_with(&server_b),
            "{version}: GetStatus server {status}"
        );
        assert!(!status.to_string().contains(SCENARIO_KEY));
        let bad = vendor(&mut ws, "SwitchServer", json!({"url": "http://x/y"})).await;
        assert_eq!(bad["ok"], false, "{bad}");

        ws.request("StopStream", Value::Null).await.unwrap();
        wait_until_async("the stream to end", Duration::from_secs(15), || {
            ingest_a.publishers(SCENARIO_KEY) + ingest_b.publishers(SCENARIO_KEY) == 0
        })
        .await;
        wait_until_not_streaming(&mut ws, Duration::from_secs(15)).await;

        // Disable: the Custom service exactly as OBS had written it.
        let disabled = vendor(&mut ws, "Disable", json!({})).await;
        assert_eq!(disabled["ok"], true, "{version}: Disable: {disabled}");
        assert_eq!(disabled["restoredType"], "rtmp_custom");
        assert_eq!(service(&mut ws).await, before);
        let after_bytes = std::fs::read(profile_dir.join("service.json")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&after_bytes),
            String::from_utf8_lossy(&before_bytes),
            "{version}: service.json not restored byte for byte"
        );

        // A listed service: the URL and key OBS resolves for it (nothing is sent there).
        let youtube =
            json!({"service": "YouTube - RTMPS", "server": YOUTUBE_SERVER, "key": YOUTUBE_KEY});
        let before_bytes = set_service(&mut ws, &profile_dir, "rtmp_common", youtube).await;
        let before = service(&mut ws).await;
        let enabled = vendor(
            &mut ws,
            "Enable",
            json!({"goaway_strategy": "break_before_make"}),
        )
        .await;
        assert_eq!(
            enabled["ok"], true,
            "{version}: Enable from YouTube: {enabled}"
        );
        let ours = service(&mut ws).await;
        assert_eq!(ours["streamServiceType"], "goaway_rtmp_service", "{ours}");
        let settings = &ours["streamServiceSettings"];
        assert_eq!(settings["server"], YOUTUBE_SERVER, "{ours}");
        assert_eq!(settings["key"], YOUTUBE_KEY, "{ours}");
        assert_eq!(settings["goaway_strategy"], "break_before_make", "{ours}");
        assert_eq!(settings["goaway_previous"]["type"], "rtmp_common", "{ours}");
        let disabled = vendor(&mut ws, "Disable", json!({})).await;
        assert_eq!(disabled["restoredType"], "rtmp_common", "{disabled}");
        assert_eq!(service(&mut ws).await, before);
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(profile_dir.join("service.json")).unwrap()),
            String::from_utf8_lossy(&before_bytes),
            "{version}: listed service.json not restored byte for byte"
        );
        let status = vendor(&mut ws, "GetStatus", json!({})).await;
        assert_eq!(
            (status["enabled"].clone(), status["streaming"].clone()),
            (json!(false), json!(false))
        );
    });

    let exit = obs.stop();
    let log = &exit.log;
    assert!(
        exit.status.success(),
        "{version}: OBS exited with {}\n{log}",
        exit.status
    );
    assert!(
        log.contains("obs-websocket vendor requests registered"),
        "{version}: no vendor requests\n{log}"
    );
    assert!(
        log.contains("[obs-goaway] move: user-request"),
        "{version}: no user-requested move in the log\n{log}"
    );
    assert!(
        !log.contains(SCENARIO_KEY) && !log.contains(YOUTUBE_KEY),
        "{version}: a key is in the log"
    );
    assert!(
        !log.contains("the stream service was replaced"),
        "{version}: our own conversions were taken for a user's edit\n{log}"
    );
    let recordings: Vec<_> = [&ingest_a, &ingest_b]
        .iter()
        .map(|ingest| {
            let stats = ingest.stats().remove(SCENARIO_KEY).expect("recorded");
            assert_eq!(
                stats.duplicates, 0,
                "{version}: an ingest skipped repeated frames"
            );
            read_flv(&stats.path)
        })
        .collect();
    let (lost, duplicated, frames) = lost_and_duplicated(&recordings, fps);
    println!(
        "{version}: {frames} video frames over A and B, {lost} lost, {duplicated} duplicated; {:.1}s",
        started.elapsed().as_secs_f32()
    );
    assert!(frames > fps as usize * 4, "{version}: only {frames} frames");
    assert_eq!(lost, 0, "{version}: frames lost across the switch");
    assert_eq!(
        duplicated, 0,
        "{version}: frames duplicated across the switch"
    );
}

/// A profile that had Enhanced Broadcasting on when OBS started: OBS 30.2+ sets its
/// multitrack stream up when the profile loads and keeps it, so `Enable` turning the option
/// off is not enough. The plugin must say that OBS has to load the profile again
/// (`reloadRequired`); once OBS has (restarted here, as the plugin tells users), Start
/// Streaming goes through our output. Without that, OBS 32.2.2 asked "continue streaming
/// without Multitrack Video?" and sent nothing. `Disable` turns the option back on.
fn enable_with_enhanced_broadcasting(version: ObsVersion) {
    version.require();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ingest, server) = loopback_ingest(&runtime, &dir.path().join("ingest"));
    let profile = ProfileBuilder::new(version)
        .service(rtmp_custom(&server, SCENARIO_KEY))
        .basic_ini("Stream1", "EnableMultitrackVideo", "true")
        .websocket(free_port())
        .plugin(PluginInstall::obs_goaway())
        .build();
    let fps = profile.fps();
    let has_multitrack = version.major() >= 30;
    let obs = profile.start(OnStart::Idle);

    let enabled = runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        vendor(&mut ws, "Enable", json!({})).await
    });
    assert_eq!(enabled["ok"], true, "{version}: Enable: {enabled}");
    assert_eq!(
        enabled["multitrackDisabled"], has_multitrack,
        "{version}: {enabled}"
    );
    assert_eq!(
        enabled["reloadRequired"], has_multitrack,
        "{version}: {enabled}"
    );
    let obs = if enabled["reloadRequired"] == true {
        let exit = obs.stop();
        exit.assert_clean("quitting after Enable");
        assert!(
            exit.log.contains("OBS keeps Enhanced Broadcasting set up"),
            "{version}: the log does not say that OBS must load the profile again\n{}",
            exit.log
        );
        exit.profile.start(OnStart::Idle)
    } else {
        obs
    };

    let received = || {
        ingest
            .stats()
            .get(SCENARIO_KEY)
            .map_or(0, |s| s.frames_received)
    };
    runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        let status = vendor(&mut ws, "GetStatus", json!({})).await;
        assert_eq!(status["enabled"], true, "{version}: {status}");
        assert_eq!(status["reloadRequired"], false, "{version}: {status}");
        ws.request("StartStream", Value::Null).await.unwrap();
        wait_until_async("frames at the ingest", Duration::from_secs(30), || {
            received() > 2 * fps as u64
        })
        .await;
        ws.request("StopStream", Value::Null).await.unwrap();
        wait_until_async("the stream to end", Duration::from_secs(15), || {
            ingest.publishers(SCENARIO_KEY) == 0
        })
        .await;
        let disabled = vendor(&mut ws, "Disable", json!({})).await;
        assert_eq!(disabled["ok"], true, "{version}: Disable: {disabled}");
        assert_eq!(
            disabled["multitrackRestored"], has_multitrack,
            "{version}: Enhanced Broadcasting must come back with the service: {disabled}"
        );
    });
    let exit = obs.stop();
    exit.assert_clean("streaming after Enable");
    let basic_ini = std::fs::read_to_string(exit.profile.profile_dir().join("basic.ini")).unwrap();
    assert!(
        basic_ini.contains("EnableMultitrackVideo=true"),
        "{version}: Enhanced Broadcasting is not on again after Disable; basic.ini:\n{basic_ini}"
    );
    assert!(
        exit.log.contains("[obs-goaway] publishing to"),
        "{version}: the stream did not go through obs-goaway\n{}",
        exit.log
    );
    assert!(
        !exit.log.contains("Preparing enhanced broadcasting stream"),
        "{version}: OBS still set Enhanced Broadcasting up\n{}",
        exit.log
    );
}

#[test]
fn obs_29_enable_switch_disable_through_websocket() {
    enable_switch_disable(ObsVersion::Host);
}

#[test]
fn obs_30_enable_switch_disable_through_websocket() {
    enable_switch_disable(ObsVersion::Trixie);
}

#[test]
fn obs_32_enable_switch_disable_through_websocket() {
    enable_switch_disable(ObsVersion::Sid);
}

#[test]
fn obs_29_enable_with_enhanced_broadcasting_on() {
    enable_with_enhanced_broadcasting(ObsVersion::Host);
}

#[test]
fn obs_30_enable_with_enhanced_broadcasting_on() {
    enable_with_enhanced_broadcasting(ObsVersion::Trixie);
}

#[test]
fn obs_32_enable_with_enhanced_broadcasting_on() {
    enable_with_enhanced_broadcasting(ObsVersion::Sid);
}

/// OBS starts with Enhanced Broadcasting on, `Enable` turns it off (and the service into
/// ours), and OBS quits, again and again: it must exit cleanly every time.
fn quits_cleanly_after_enable(version: ObsVersion, cycles: usize) {
    version.require();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for cycle in 1..=cycles {
        let profile = ProfileBuilder::new(version)
            .service(rtmp_custom("rtmp://127.0.0.1:1/live", SCENARIO_KEY))
            .basic_ini("Stream1", "EnableMultitrackVideo", "true")
            .websocket(free_port())
            .plugin(PluginInstall::obs_goaway())
            .build();
        let obs = profile.start(OnStart::Idle);
        let enabled = runtime.block_on(async {
            let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
            vendor(&mut ws, "Enable", json!({})).await
        });
        assert_eq!(
            enabled["ok"], true,
            "{version}: cycle {cycle}: Enable: {enabled}"
        );
        let exit = obs.stop();
        exit.assert_clean(&format!("cycle {cycle}: quitting after Enable"));
    }
}

#[test]
fn obs_30_quits_cleanly_after_enable_20_times() {
    quits_cleanly_after_enable(ObsVersion::Trixie, 20);
}

/// `Disable` while a stream runs: libobs destroys our service only once the output using
/// it has stopped, long after the replacement. That late destruction is the plugin's own
/// doing, not the user replacing the service: lossless streaming must stay off (it came
/// back on by itself, now and then, when `Disable` followed a stream's end closely).
fn disable_while_streaming_stays_off(version: ObsVersion) {
    version.require();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ingest, server) = loopback_ingest(&runtime, dir.path());
    let profile = ProfileBuilder::new(version)
        .service(rtmp_custom(&server, SCENARIO_KEY))
        .websocket(free_port())
        .plugin(PluginInstall::obs_goaway())
        .build();
    let fps = profile.fps();
    let mut obs = profile.start(OnStart::Idle);
    runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        let enabled = vendor(&mut ws, "Enable", json!({})).await;
        assert_eq!(enabled["ok"], true, "{version}: Enable: {enabled}");
        ws.request("StartStream", Value::Null).await.unwrap();
        wait_until_async("frames at the ingest", Duration::from_secs(30), || {
            received(&ingest) > 2 * u64::from(fps)
        })
        .await;
        let disabled = vendor(&mut ws, "Disable", json!({})).await;
        assert_eq!(disabled["ok"], true, "{version}: Disable: {disabled}");
        ws.request("StopStream", Value::Null).await.unwrap();
    });
    obs.wait_for_log("[obs-goaway] stream ended", Duration::from_secs(20));
    obs.wait_for_log(
        "[obs-goaway] the lossless streaming service replaced earlier is gone",
        Duration::from_secs(10),
    );
    runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        let status = vendor(&mut ws, "GetStatus", json!({})).await;
        assert_eq!(status["enabled"], false, "{version}: {status}");
        let now = service(&mut ws).await;
        assert_eq!(now["streamServiceType"], "rtmp_custom", "{version}: {now}");
    });
    let exit = obs.stop();
    exit.assert_clean("quitting after Disable while streaming");
    assert!(
        !exit.log.contains("wrapping the new"),
        "{version}: lossless streaming came back on by itself\n{}",
        exit.log
    );
    let saved = exit.profile.service_json();
    assert_eq!(
        saved["type"], "rtmp_custom",
        "{version}: service.json {saved}"
    );
}

#[test]
fn obs_29_disable_while_streaming_stays_off() {
    disable_while_streaming_stays_off(ObsVersion::Host);
}
