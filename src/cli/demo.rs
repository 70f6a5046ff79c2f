//! `goaway demo`: the whole story on one machine, with proof.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::time::{sleep_until, Instant};

use obs_goaway::ingest::{Ingest, IngestConfig, SignalKind};
use obs_goaway::media::compare::compare;
use obs_goaway::media::flv::FlvReader;
use obs_goaway::media::{Tag, TagKind};
use obs_goaway::session::{self, SessionConfig};
use obs_goaway::source::{spawn_flv_source, Pacing, SourceProgress};
use obs_goaway::transport::RtmpUrl;

/// The 20 s sample clip, built in so the demo needs no files.
const SAMPLE: &[u8] = include_bytes!("../../data/sample.flv");

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// FLV file to publish instead of the built-in sample.
    #[arg(long, value_name = "FLV")]
    input: Option<PathBuf>,
    /// How many times the ingest asks the publisher to move (alternating Go Away and
    /// Reconnect Request).
    #[arg(long, default_value_t = 4)]
    moves: u32,
    /// Play this many times faster than real time.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    speed: f64,
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode, String> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        return Err(format!(
            "--speed must be a positive number, not {}",
            args.speed
        ));
    }
    let bytes: Vec<u8> = match &args.input {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => SAMPLE.to_vec(),
    };
    let name = args.input.as_ref().map_or_else(
        || "built-in sample (data/sample.flv)".to_string(),
        |p| p.display().to_string(),
    );
    let input: Vec<Tag> = FlvReader::new(&bytes[..])
        .and_then(|r| r.collect::<Result<_, _>>())
        .map_err(|e| format!("{name}: {e}"))?;
    let frames: Vec<&Tag> = input.iter().filter(|t| t.is_frame()).collect();
    let duration_ms = match (frames.first(), frames.last()) {
        (Some(a), Some(b)) => b.timestamp.saturating_sub(a.timestamp),
        _ => return Err(format!("{name}: no audio or video frames")),
    };

    let dir = tempfile::Builder::new()
        .prefix("goaway-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let record_dir = dir.path().to_path_buf();
    let ingest = Ingest::start(IngestConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        record_dir,
    ))
    .await
    .map_err(|e| format!("cannot start the ingest: {e}"))?;
    let addr = ingest.local_addrs()[0];
    let url = RtmpUrl::parse(&format!("rtmp://{addr}/live/demo")).map_err(|e| e.to_string())?;
    println!(
        "obs-goaway demo: publishing {name} ({:.1} s, {} frames) in real time{} to the reference ingest at rtmp://{addr}/live",
        f64::from(duration_ms) / 1000.0,
        frames.len(),
        if args.speed == 1.0 { String::new() } else { format!(" x{}", args.speed) },
    );
    println!("the ingest will ask the publisher to move {} times, alternating Go Away and Reconnect Request\n", args.moves);

    let (sender, receiver) = session::packet_channel(256);
    let progress = Arc::new(SourceProgress::default());
    let source = spawn_flv_source(
        std::io::Cursor::new(bytes),
        sender,
        Pacing::Timestamps { speed: args.speed },
        progress,
    )
    .map_err(|e| format!("cannot start the file reader: {e}"))?;
    let session = tokio::spawn(session::run(SessionConfig::new(url), receiver, None));

    let start = Instant::now();
    let wall = Duration::from_millis(u64::from(duration_ms)).div_f64(args.speed);
    for i in 1..=args.moves {
        sleep_until(start + wall.mul_f64(f64::from(i) / f64::from(args.moves + 1))).await;
        let kind = if i % 2 == 1 {
            SignalKind::GoAway
        } else {
            SignalKind::ReconnectRequest
        };
        let sent = ingest.signal_all(Some(kind));
        println!(
            "  {:>5.1} s  ingest sends {:<18} ({} publisher{})",
            start.elapsed().as_secs_f64(),
            match kind {
                SignalKind::GoAway => "Go Away",
                SignalKind::ReconnectRequest => "Reconnect Request",
            },
            sent,
            if sent == 1 { "" } else { "s" }
        );
    }
    let report = session
        .await
        .map_err(|e| format!("session task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let _ = source.join();
    // The last connection closes after the stream ends; let the ingest see it go.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ingest.publishers("demo") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = ingest
        .stats()
        .remove("demo")
        .ok_or("the ingest recorded nothing")?;
    let recorded = super::read_flv(&stats.path)?;
    let result = compare(&input, &recorded);

    println!("\n  #  signal              cutover             keyframe     took");
    for (i, c) in report.cutovers.iter().enumerate() {
        println!(
            "  {}  {:<18}  {:<18}  {:>7} ms  {:>4} ms",
            i + 1,
            c.cause.to_string(),
            c.kind.to_string(),
            c.keyframe_timestamp,
            c.took.as_millis()
        );
    }
    let interval = frame_interval(&input);
    println!();
    println!("  connections           {:>6}", report.connections);
    println!("  frames sent           {:>6}", result.sent);
    println!("  frames received       {:>6}", result.received);
    println!("  frames lost           {:>6}", result.lost);
    println!("  frames duplicated     {:>6}", result.duplicated);
    println!(
        "  frames in order       {:>6}",
        if result.in_order { "yes" } else { "NO" }
    );
    println!(
        "  largest arrival gap   {:>6} ms  (video frame interval {interval} ms)",
        stats.largest_gap.as_millis()
    );
    let moved_every_time = report.cutovers.len() as u32 == args.moves;
    let verdict = result.is_lossless() && moved_every_time;
    println!(
        "\n  verdict: {}",
        if verdict {
            format!(
                "LOSSLESS: {} moves, every frame delivered exactly once",
                report.cutovers.len()
            )
        } else if !moved_every_time {
            format!(
                "FAILED: {} of {} moves happened",
                report.cutovers.len(),
                args.moves
            )
        } else {
            "FAILED: the recording differs from the input".to_string()
        }
    );
    Ok(if verdict {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The most common gap between consecutive video timestamps.
fn frame_interval(tags: &[Tag]) -> u32 {
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video && t.is_frame())
        .map(|t| t.timestamp)
        .collect();
    let mut deltas: Vec<u32> = video
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    deltas.sort_unstable();
    deltas.get(deltas.len() / 2).copied().unwrap_or(0)
}
