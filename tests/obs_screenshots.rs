//! The Tools menu entry opens the plugin's dialog in real OBS, in the user's language:
//! OBS 29.0.2 (Qt 5) in English and OBS 32.2.2 (Qt 6) in German, each streaming through the
//! plugin after one "Switch server" (so the status shows a move). The menu is opened and
//! the entry chosen with the keyboard (xdotool), as a user would; the dialog's window title
//! is OBS's own "Properties for '…'" with the plugin's localized name.
//!
//! Screenshots of the open menu and of the dialog go to `$OBS_GOAWAY_SCREENSHOTS` when set
//! (`data/screenshots/make.sh` sets it to that directory), else to a temporary directory.
//! Needs what tests/obs_plugin.rs needs, plus xdotool and ImageMagick.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::free_port;
use common::obs::{ObsRun, ObsVersion, OnStart, PluginInstall, ProfileBuilder, SCENARIO_KEY};
use obs_goaway::ingest::{Ingest, IngestConfig};
use serde_json::{json, Value};

/// `x y width height` of an X window.
fn geometry(obs: &ObsRun, window: &str) -> (i32, i32, u32, u32) {
    let mut text = String::new();
    for _ in 0..20 {
        text = obs.xdotool(&["getwindowgeometry", "--shell", window]);
        if text.contains("X=") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let field = |name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    (
        field("X") as i32,
        field("Y") as i32,
        field("WIDTH") as u32,
        field("HEIGHT") as u32,
    )
}

/// Saves the screen area `(x, y, width, height)` (popups included, unlike a window grab).
fn shot(obs: &ObsRun, area: (i32, i32, u32, u32), path: &Path) {
    let full = path.with_extension("full.png");
    obs.screenshot(&full);
    let (x, y, w, h) = area;
    let status = Command::new("convert")
        .arg(&full)
        .args(["-crop", &format!("{w}x{h}+{x}+{y}"), "+repage"])
        .arg(path)
        .status()
        .expect("running ImageMagick convert");
    assert!(status.success(), "convert failed for {}", path.display());
    let _ = std::fs::remove_file(full);
}

fn output_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("OBS_GOAWAY_SCREENSHOTS") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            (PathBuf::from(dir), None)
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            (dir.path().to_path_buf(), Some(dir))
        }
    }
}

/// Opens a menu of OBS's main window (1280x720) with its mnemonic `key`, as a user does
/// with Alt; returns the main window's id.
fn open_menu(obs: &ObsRun, key: &str) -> String {
    let main = obs
        .wait_for_window("^OBS [0-9]", Duration::from_secs(30))
        .expect("OBS's main window");
    obs.xdotool(&["windowsize", &main, "1280", "720"]);
    std::thread::sleep(Duration::from_millis(1500));
    obs.xdotool(&["windowfocus", "--sync", &main]);
    obs.xdotool(&["key", &format!("alt+{key}")]);
    std::thread::sleep(Duration::from_millis(800));
    main
}

/// `tools_key`: the Tools menu's mnemonic in `language` (OBS's `&Tools`, `&Werkzeuge`).
fn menu_and_dialog(version: ObsVersion, language: &str, tools_key: &str, dialog_title: &str) {
    version.require();
    let (dir, _keep) = output_dir();
    let prefix = format!("obs-{}-{language}", version.major());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let ingest_a = runtime
        .block_on(Ingest::start(IngestConfig::new(
            loopback,
            scratch.path().join("a"),
        )))
        .unwrap();
    let ingest_b = runtime
        .block_on(Ingest::start(IngestConfig::new(
            loopback,
            scratch.path().join("b"),
        )))
        .unwrap();
    let server_a = format!("rtmp://{}/live", ingest_a.local_addrs()[0]);
    let server_b = format!("rtmp://{}/live", ingest_b.local_addrs()[0]);
    let profile = ProfileBuilder::new(version)
        .service(json!({"type": "goaway_rtmp_service",
                        "settings": {"server": server_a, "key": SCENARIO_KEY}}))
        .websocket(free_port())
        .global_ini("General", "Language", language)
        .global_ini("BasicWindow", "PreviewEnabled", "true")
        .video(640, 360, 30)
        .plugin(PluginInstall::obs_goaway())
        .build();
    let mut obs = profile.start(OnStart::Stream);
    obs.wait_for_log("[obs-goaway] publishing to", Duration::from_secs(30));
    runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        let call = json!({"vendorName": "obs-goaway", "requestType": "SwitchServer",
                          "requestData": {"url": server_b}});
        let response: Value = ws.request("CallVendorRequest", call).await.unwrap();
        assert_eq!(response["responseData"]["ok"], true, "{response}");
    });
    obs.wait_for_log("[obs-goaway] move: user-request", Duration::from_secs(15));

    let main = open_menu(&obs, tools_key);
    // The plugin's entry is the menu's last: Up from the opened menu selects it.
    obs.xdotool(&["key", "Up"]);
    std::thread::sleep(Duration::from_millis(500));
    let (x, y, _, _) = geometry(&obs, &main);
    shot(
        &obs,
        (x, y, 900, 460),
        &dir.join(format!("{prefix}-tools-menu.png")),
    );
    obs.xdotool(&["key", "Return"]);
    // xdotool matches titles as regular expressions.
    let pattern: String = dialog_title
        .chars()
        .flat_map(|c| {
            let escape = "()[]{}.*+?|^$\\".contains(c).then_some('\\');
            escape.into_iter().chain(std::iter::once(c))
        })
        .collect();
    let dialog = obs
        .wait_for_window(&pattern, Duration::from_secs(10))
        .unwrap_or_else(|| {
            let ids = obs.xdotool(&["search", "--onlyvisible", "--name", "."]);
            let names: Vec<String> = ids
                .lines()
                .map(|id| obs.xdotool(&["getwindowname", id]).trim().to_string())
                .collect();
            panic!(
                "{version}: no \"{dialog_title}\" window among {names:?}\n{}",
                obs.log()
            )
        });
    obs.xdotool(&["windowsize", &dialog, "820", "1040"]);
    obs.xdotool(&["windowmove", &dialog, "0", "0"]);
    std::thread::sleep(Duration::from_millis(1500));
    let area = geometry(&obs, &dialog);
    shot(&obs, area, &dir.join(format!("{prefix}-dialog.png")));
    // The status and "Switch server now" are below: scroll there over the labels' column
    // (spin boxes and lists in OBS's dialog ignore the wheel anyway).
    obs.xdotool(&["mousemove", "--window", &dialog, "60", "500"]);
    obs.xdotool(&["click", "--repeat", "20", "--delay", "30", "5"]);
    std::thread::sleep(Duration::from_millis(800));
    shot(&obs, area, &dir.join(format!("{prefix}-dialog-status.png")));
    // Cancel: the dialog changes nothing and closes.
    obs.xdotool(&["windowfocus", "--sync", &dialog]);
    obs.xdotool(&["key", "Escape"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        obs.xdotool(&["search", "--onlyvisible", "--name", &pattern])
            .trim()
            .is_empty(),
        "{version}: the dialog did not close on Escape"
    );
    let exit = obs.stop();
    assert!(
        exit.status.success(),
        "{version}: OBS exited with {}\n{}",
        exit.status,
        exit.log
    );
    assert!(
        !exit.log.contains(SCENARIO_KEY),
        "{version}: the key is in the log"
    );
}

/// OBS's Settings -> Stream page with lossless streaming on for a profile on the listed
/// Twitch service: the page shows that service (its server and key), not a placeholder.
/// Opened from the File menu with the keyboard (`&File`, `&Settings`, then the page list's
/// second entry); Escape cancels, and lossless streaming is still on.
fn settings_stream_page(version: ObsVersion) {
    version.require();
    let (dir, _keep) = output_dir();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let profile = ProfileBuilder::new(version)
        .service(json!({"type": "goaway_rtmp_service",
                        "settings": {"goaway_wrapped_type": "rtmp_common", "service": "Twitch",
                                     "server": "auto", "key": SCENARIO_KEY}}))
        .websocket(free_port())
        .video(640, 360, 30)
        .plugin(PluginInstall::obs_goaway())
        .build();
    let obs = profile.start(OnStart::Idle);
    let settings = obs.open_settings();
    obs.xdotool(&["windowmove", &settings, "0", "0"]);
    // The page list has the focus, on General: Stream is next.
    obs.xdotool(&["key", "Down"]);
    std::thread::sleep(Duration::from_millis(1500));
    let area = geometry(&obs, &settings);
    shot(
        &obs,
        area,
        &dir.join(format!("obs-{}-en-US-settings-stream.png", version.major())),
    );
    obs.xdotool(&["key", "Escape"]);
    std::thread::sleep(Duration::from_millis(500));
    runtime.block_on(async {
        let mut ws = obs.websocket(Duration::from_secs(30)).await.unwrap();
        let service = ws
            .request("GetStreamServiceSettings", Value::Null)
            .await
            .unwrap();
        assert_eq!(
            service["streamServiceType"], "goaway_rtmp_service",
            "{version}: looking at Settings -> Stream changed the service: {service}"
        );
    });
    let exit = obs.stop();
    exit.assert_clean("Settings -> Stream opened and cancelled");
    assert!(
        !exit.log.contains(SCENARIO_KEY),
        "{version}: the key is in the log"
    );
}

#[test]
fn obs_29_settings_stream_page_shows_the_wrapped_service() {
    settings_stream_page(ObsVersion::Host);
}

#[test]
fn obs_29_tools_menu_opens_the_dialog_in_english() {
    menu_and_dialog(
        ObsVersion::Host,
        "en-US",
        "t",
        "Properties for 'Lossless RTMP (Go Away)'",
    );
}

#[test]
fn obs_32_tools_menu_opens_the_dialog_in_german() {
    menu_and_dialog(
        ObsVersion::Sid,
        "de-DE",
        "w",
        "Eigenschaften von „Verlustfreies RTMP (Go Away)“",
    );
}
