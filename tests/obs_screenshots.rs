//! The Tools menu entry opens the plugin's dialog in real OBS, in the user's language:
//! OBS 29.0.2 (Qt 5) in English and OBS 32.2.2 (Qt 6) in German, each streaming through the
//! plugin after one "Switch server" (so the status shows a move). The menu is opened and
//! the entry chosen with the keyboard (xdotool), as a user would; the dialog's window title
//! is OBS's own "Properties for '…'" with the plugin's localized name.
//!
//! Screenshots of the open menu and of the dialog go to `$OBS_GOAWAY_SCREENSHOTS` when set
//! (`data/screenshots/make.sh` sets it to that directory), else to a temporary directory.
//! Needs what tests/obs_plugin.rs needs, plus xdotool and ImageMagick.
//!
//! Nothing here waits a fixed time: after each key the test waits until the screen area it
//! photographs has changed and then stopped changing ([`wait_drawn`]). The scene is a still
//! picture so that the preview inside that area stands still; OBS's status bar and audio
//! meters, which never do, lie outside it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::obs::{ObsRun, ObsVersion, OnStart, PluginInstall, ProfileBuilder, SCENARIO_KEY};
use common::{free_port, wait_until, within};
use obs_goaway::ingest::{Ingest, IngestConfig};
use serde_json::{json, Value};

/// A still scene (colour bars) and a tone, so that only OBS's own drawing changes the
/// photographed areas.
const STILL_SCENE: &str =
    "smptebars=size=640x360:rate=30[out0];sine=frequency=440:sample_rate=48000[out1]";
/// How long OBS may take to draw what a key asked for.
const DRAW_LIMIT: Duration = Duration::from_secs(15);
/// Grabs in a row that must show the same pixels for a drawing to count as finished.
const STILL_GRABS: usize = 3;

/// `x y width height` of an X window.
fn geometry(obs: &ObsRun, window: &str) -> (i32, i32, u32, u32) {
    let mut text = String::new();
    within(Duration::from_secs(5), || {
        text = obs.xdotool(&["getwindowgeometry", "--shell", window]);
        text.contains("X=")
    });
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

/// The raw pixels of the screen area `(x, y, width, height)`.
fn pixels(obs: &ObsRun, (x, y, w, h): (i32, i32, u32, u32)) -> Vec<u8> {
    let output = obs
        .import()
        .args(["-crop", &format!("{w}x{h}+{x}+{y}"), "rgb:-"])
        .output()
        .expect("running ImageMagick import");
    assert!(output.status.success(), "import failed: {output:?}");
    output.stdout
}

/// Waits until `area` shows something other than `before` (when given) and then the same
/// pixels in [`STILL_GRABS`] grabs in a row: OBS has drawn `what` in full. Returns the
/// pixels.
fn wait_drawn(
    obs: &ObsRun,
    area: (i32, i32, u32, u32),
    before: Option<&[u8]>,
    what: &str,
) -> Vec<u8> {
    let deadline = Instant::now() + DRAW_LIMIT;
    let mut still = 0;
    let mut last = Vec::new();
    loop {
        let now = pixels(obs, area);
        let changed = before.is_none_or(|before| now != before);
        still = if changed && now == last { still + 1 } else { 1 };
        last = now;
        if changed && still >= STILL_GRABS {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the screen {} within {DRAW_LIMIT:?}\n{}",
            if changed {
                "kept changing"
            } else {
                "did not change"
            },
            obs.log()
        );
    }
}

/// Waits until OBS has laid out `window` at `size`.
fn wait_sized(obs: &ObsRun, window: &str, size: (u32, u32), what: &str) {
    wait_until(format!("{what} at {size:?}"), DRAW_LIMIT, || {
        let (_, _, w, h) = geometry(obs, window);
        (w, h) == size
    });
}

/// Waits until no visible window matches `pattern`.
fn wait_closed(obs: &ObsRun, pattern: &str, what: &str) {
    wait_until(format!("{what} to close"), DRAW_LIMIT, || {
        obs.xdotool(&["search", "--onlyvisible", "--name", pattern])
            .trim()
            .is_empty()
    });
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
/// with Alt, and waits until it is drawn; returns the main window's id, the area
/// photographed (the menu bar, the menu and the top of the preview) and its pixels.
fn open_menu(obs: &ObsRun, key: &str) -> (String, (i32, i32, u32, u32), Vec<u8>) {
    let main = obs
        .wait_for_window("^OBS [0-9]", Duration::from_secs(30))
        .expect("OBS's main window");
    obs.xdotool(&["windowsize", &main, "1280", "720"]);
    wait_sized(obs, &main, (1280, 720), "OBS's main window");
    let (x, y, _, _) = geometry(obs, &main);
    let area = (x, y, 900, 460);
    let closed = wait_drawn(obs, area, None, "OBS's main window at its new size");
    obs.xdotool(&["windowfocus", "--sync", &main]);
    obs.xdotool(&["key", &format!("alt+{key}")]);
    let open = wait_drawn(obs, area, Some(&closed), &format!("the menu of alt+{key}"));
    (main, area, open)
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
        .lavfi(STILL_SCENE)
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

    let (_, area, open) = open_menu(&obs, tools_key);
    // The plugin's entry is the menu's last: Up from the opened menu selects it.
    obs.xdotool(&["key", "Up"]);
    wait_drawn(
        &obs,
        area,
        Some(&open),
        "the Tools menu's last entry selected",
    );
    shot(&obs, area, &dir.join(format!("{prefix}-tools-menu.png")));
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
    wait_sized(&obs, &dialog, (820, 1040), "the dialog");
    let area = geometry(&obs, &dialog);
    let top = wait_drawn(&obs, area, None, "the dialog at its new size");
    shot(&obs, area, &dir.join(format!("{prefix}-dialog.png")));
    // The status and "Switch server now" are below: scroll there over the labels' column
    // (spin boxes and lists in OBS's dialog ignore the wheel anyway).
    obs.xdotool(&["mousemove", "--window", &dialog, "60", "500"]);
    obs.xdotool(&["click", "--repeat", "20", "--delay", "30", "5"]);
    wait_drawn(&obs, area, Some(&top), "the dialog scrolled to its status");
    shot(&obs, area, &dir.join(format!("{prefix}-dialog-status.png")));
    // Cancel: the dialog changes nothing and closes.
    obs.xdotool(&["windowfocus", "--sync", &dialog]);
    obs.xdotool(&["key", "Escape"]);
    wait_closed(
        &obs,
        &pattern,
        &format!("{version}: the dialog, on Escape,"),
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
        .lavfi(STILL_SCENE)
        .plugin(PluginInstall::obs_goaway())
        .build();
    let obs = profile.start(OnStart::Idle);
    let settings = obs.open_settings();
    obs.xdotool(&["windowmove", &settings, "0", "0"]);
    obs.xdotool(&["windowfocus", "--sync", &settings]);
    let area = geometry(&obs, &settings);
    let general = wait_drawn(&obs, area, None, "Settings, on its General page");
    // The page list has the focus, on General: Stream is next.
    obs.xdotool(&["key", "Down"]);
    wait_drawn(&obs, area, Some(&general), "Settings -> Stream");
    shot(
        &obs,
        area,
        &dir.join(format!("obs-{}-en-US-settings-stream.png", version.major())),
    );
    obs.xdotool(&["key", "Escape"]);
    wait_closed(
        &obs,
        "^Settings$",
        &format!("{version}: Settings, on Escape,"),
    );
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
