//! The publisher against real servers: nginx-rtmp (plain and behind TLS) and ffmpeg.

mod common;

use std::process::{Command, Stdio};

use common::*;
use obs_goaway::media::compare::compare;

#[test]
fn publishes_every_frame_to_nginx_rtmp() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path(), None);
    let url = format!("rtmp://127.0.0.1:{}/live/cam?token=s3cret", nginx.port);
    let (ok, stderr) = goaway(&["publish", SAMPLE, &url]);
    assert!(ok, "publish failed: {stderr}");
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("cam?"),
        "key leaked: {stderr}"
    );
    let files = nginx.recordings("cam");
    assert_eq!(files.len(), 1, "one publish, one recording: {files:?}");
    let input = sample_tags();
    let result = compare(&input, &read_flv(&files[0]));
    assert!(result.is_lossless(), "{result:?}");
    assert_eq!(ffprobe_decoded_frames(&files[0]), frame_counts(&input));
}

#[test]
fn publishes_to_nginx_without_announcing_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path(), None);
    let url = format!("rtmp://127.0.0.1:{}/live/plain", nginx.port);
    let (ok, stderr) = goaway(&[
        "publish",
        "--no-goaway",
        "--realtime",
        "--speed",
        "20",
        SAMPLE,
        &url,
    ]);
    assert!(ok, "publish failed: {stderr}");
    let files = nginx.recordings("plain");
    assert!(compare(&sample_tags(), &read_flv(&files[0])).is_lossless());
}

/// The publisher names its user in `connect` at once (`live?authmod=adobe&user=obs`); a
/// server without authentication takes the application name without the query.
#[test]
fn credentials_do_not_disturb_a_server_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path(), None);
    let url = format!("rtmp://obs:pw@127.0.0.1:{}/live/cred", nginx.port);
    let (ok, stderr) = goaway(&["publish", SAMPLE, &url]);
    assert!(ok, "publish failed: {stderr}");
    let files = nginx.recordings("cred");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(compare(&sample_tags(), &read_flv(&files[0])).is_lossless());
}

#[test]
fn publishes_over_rtmps_through_a_tls_terminator() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path());
    let nginx = Nginx::start(dir.path(), Some((&cert, &key)));
    let url = format!("rtmps://127.0.0.1:{}/live/secure", nginx.tls_port.unwrap());

    // Without the test CA the certificate is rejected, with a clear error.
    let (ok, stderr) = goaway(&["publish", SAMPLE, &url]);
    assert!(!ok);
    assert!(
        stderr.contains("TLS handshake failed") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );

    let (ok, stderr) = goaway(&["publish", "--ca-file", ca.to_str().unwrap(), SAMPLE, &url]);
    assert!(ok, "publish failed: {stderr}");
    let files = nginx.recordings("secure");
    let input = sample_tags();
    let report = compare(&input, &read_flv(&files[0]));
    assert!(report.is_lossless(), "{report:?}");
    assert_eq!(ffprobe_decoded_frames(&files[0]), frame_counts(&input));
}

#[test]
fn publishes_every_frame_to_an_ffmpeg_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("ffmpeg.flv");
    let ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/key"))
        .args(["-c", "copy", "-y"])
        .arg(&out)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg is required for this test (.ci/run installs it)");
    let mut ffmpeg = Guard(ffmpeg);
    wait_for_port(port);
    let (ok, stderr) = goaway(&[
        "publish",
        SAMPLE,
        &format!("rtmp://127.0.0.1:{port}/live/key"),
    ]);
    assert!(ok, "publish failed: {stderr}");
    let status = ffmpeg.0.wait().unwrap();
    assert!(status.success(), "ffmpeg failed");
    assert_eq!(ffprobe_decoded_frames(&out), frame_counts(&sample_tags()));
}

#[test]
fn a_second_publisher_of_a_live_key_gets_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path(), None);
    let url = format!("rtmp://127.0.0.1:{}/live/busy", nginx.port);
    let mut first = Guard(
        Command::new(GOAWAY)
            .args(["publish", "--realtime", "-q", SAMPLE, &url])
            .spawn()
            .unwrap(),
    );
    nginx.wait_for_publisher("busy");
    let (ok, stderr) = goaway(&["publish", SAMPLE, &url]);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "goaway: error: server refused publish: NetStream.Publish.BadName (Already publishing)"
    );
    let _ = first.0.kill();
}

#[test]
fn failures_exit_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let closed_port = free_port();
    let corrupt = dir.path().join("corrupt.flv");
    std::fs::write(
        &corrupt,
        b"FLV\x01\x05\0\0\0\x09\0\0\0\0\x07\0\0\x01\0\0\0\0\0\0\0\xff",
    )
    .unwrap();
    let nginx = Nginx::start(dir.path(), None);
    let good = format!("rtmp://127.0.0.1:{}/live/k", nginx.port);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![SAMPLE.into(), "http://h/live/k".into()],
            "goaway: error: unsupported scheme \"http\": use rtmp:// or rtmps://",
        ),
        (
            vec![SAMPLE.into(), "rtmp://127.0.0.1/live".into()],
            "goaway: error: URL has no stream key (expected rtmp://host/app/key)",
        ),
        (
            vec![
                SAMPLE.into(),
                format!("rtmp://127.0.0.1:{closed_port}/live/k"),
            ],
            "goaway: error: cannot connect to 127.0.0.1:",
        ),
        (
            vec![SAMPLE.into(), "rtmp://no-such-host.invalid/live/k".into()],
            "goaway: error: cannot resolve no-such-host.invalid",
        ),
        (
            vec!["/nonexistent.flv".into(), good.clone()],
            "goaway: error: /nonexistent.flv: No such file",
        ),
        (
            vec![corrupt.to_str().unwrap().into(), good],
            "corrupt FLV: tag 0 at byte 13 has unknown type 7",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["publish".to_string(), "-q".to_string()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let (ok, stderr) = goaway(&refs);
        assert!(!ok, "{refs:?} should fail");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{refs:?}: one line expected, got {stderr}");
        assert!(lines[0].contains(expected), "{refs:?}: {stderr}");
    }
}

#[test]
fn rtmp_to_an_http_server_is_a_clear_protocol_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut socket, _)) = listener.accept() {
            use std::io::Write;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            // Open until the publisher leaves, as a web server waiting for more would be.
            let _ = std::io::copy(&mut socket, &mut std::io::sink());
        }
    });
    let (ok, stderr) = goaway(&[
        "publish",
        "-q",
        SAMPLE,
        &format!("rtmp://127.0.0.1:{port}/live/k"),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("not RTMP 3 (is this an RTMP port?"),
        "{stderr}"
    );
}
