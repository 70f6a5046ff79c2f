//! Publisher authentication (`authmod=adobe` and Limelight's `llnw`) between independent
//! peers, run as users run them: FFmpeg's own RTMP client publishing into `goaway serve`
//! (the ingest's side against a client we did not write), and `goaway publish` into it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use obs_goaway::media::compare::compare;

const PASSWORD: &str = "s3cret!";

/// `goaway serve` requiring authentication on a free loopback port.
struct Serve {
    port: u16,
    dir: tempfile::TempDir,
    guard: Guard,
}

impl Serve {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(GOAWAY)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--record",
            ])
            .arg(dir.path())
            .args(["--auth", &format!("obs:{PASSWORD}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = Guard(child);
        wait_for_port(port);
        Self { port, dir, guard }
    }

    fn url(&self, userinfo: &str, key: &str) -> String {
        format!("rtmp://{userinfo}127.0.0.1:{}/live/{key}", self.port)
    }

    fn recording(&self, key: &str) -> PathBuf {
        self.dir.path().join(format!("{key}.flv"))
    }

    /// Stops the server (Ctrl-C) and returns its log; the recordings stay until drop.
    fn stop(&mut self) -> String {
        let status = Command::new("kill")
            .args(["-INT", &self.guard.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut log = String::new();
        use std::io::Read;
        self.guard
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        log
    }
}

/// FFmpeg publishing the sample as fast as it can; returns (success, stderr).
fn ffmpeg_publish(url: &str) -> (bool, String) {
    require("ffmpeg", "ffmpeg");
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i", SAMPLE])
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_recorded_losslessly(path: &Path) {
    let input = sample_tags();
    let comparison = compare(&input, &read_flv(path));
    assert!(comparison.is_lossless(), "{comparison:?}");
    assert_eq!(ffprobe_decoded_frames(path), frame_counts(&input));
}

#[test]
fn ffmpeg_authenticates_into_the_ingest_with_adobe() {
    let mut serve = Serve::start(&[]);
    let (ok, stderr) = ffmpeg_publish(&serve.url(&format!("obs:{PASSWORD}@"), "ff"));
    assert!(ok, "ffmpeg failed: {stderr}");
    let log = serve.stop();
    let recording = serve.recording("ff");
    assert_recorded_losslessly(&recording);
    // FFmpeg connects without credentials first, as librtmp does: three connections.
    assert!(
        log.contains("connect refused: no authmod=adobe credentials; asked for them")
            && log.contains("connect refused: challenge sent to user \"obs\"")
            && log.contains("authenticated as \"obs\""),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn ffmpeg_authenticates_into_the_ingest_with_llnw() {
    let mut serve = Serve::start(&["--auth-method", "llnw"]);
    let (ok, stderr) = ffmpeg_publish(&serve.url(&format!("obs:{PASSWORD}@"), "llnw"));
    assert!(ok, "ffmpeg failed: {stderr}");
    serve.stop();
    let recording = serve.recording("llnw");
    assert_recorded_losslessly(&recording);
}

#[test]
fn ffmpeg_without_the_right_password_records_nothing() {
    let mut serve = Serve::start(&[]);
    let (ok, stderr) = ffmpeg_publish(&serve.url("obs:guess@", "wrong"));
    assert!(!ok);
    assert!(stderr.contains("Incorrect username/password"), "{stderr}");
    let (ok, stderr) = ffmpeg_publish(&serve.url("", "none"));
    assert!(!ok);
    assert!(stderr.contains("No credentials set"), "{stderr}");
    let log = serve.stop();
    assert!(!serve.recording("wrong").exists() && !serve.recording("none").exists());
    assert!(log.contains("wrong password for user \"obs\""), "{log}");
}

#[test]
fn goaway_authenticates_with_the_password_from_the_environment() {
    let mut serve = Serve::start(&[]);
    let output = Command::new(GOAWAY)
        .args(["publish", SAMPLE, &serve.url("obs@", "env")])
        .env("GOAWAY_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "publish failed: {stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    let log = serve.stop();
    let recording = serve.recording("env");
    assert_recorded_losslessly(&recording);
    // Naming the user at once saves FFmpeg's and librtmp's first connection.
    assert!(!log.contains("asked for them"), "{log}");
    assert_eq!(log.matches("challenge sent").count(), 1, "{log}");
}

#[test]
fn goaway_authenticates_with_user_and_password_options() {
    let mut serve = Serve::start(&["--auth-method", "llnw"]);
    let (ok, stderr) = goaway(&[
        "publish",
        "--user",
        "obs",
        "--password",
        PASSWORD,
        SAMPLE,
        &serve.url("", "flags"),
    ]);
    assert!(ok, "publish failed: {stderr}");
    serve.stop();
    let recording = serve.recording("flags");
    assert_recorded_losslessly(&recording);
}

#[test]
fn credential_failures_exit_non_zero_with_one_clear_line() {
    let mut serve = Serve::start(&[]);
    let cases = [
        (
            serve.url("obs:guess@", "k"),
            "goaway: error: authentication failed: wrong password for user \"obs\"",
        ),
        (
            serve.url("eve:guess@", "k"),
            "goaway: error: authentication failed: the server has no user \"eve\"",
        ),
        (
            serve.url("", "k"),
            "goaway: error: the server requires a username and password (authmod=adobe)",
        ),
        (
            serve.url("obs@", "k"),
            "goaway: error: a user needs a password: --password, GOAWAY_PASSWORD or user:password@ in the URL",
        ),
    ];
    for (url, expected) in cases {
        let (ok, stderr) = goaway(&["publish", "-q", SAMPLE, &url]);
        assert!(!ok, "{url} should fail");
        assert_eq!(stderr.trim(), expected, "{url}");
    }
    let log = serve.stop();
    assert!(!log.contains("guess"), "{log}");
}
