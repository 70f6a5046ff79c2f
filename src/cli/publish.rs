//! `goaway publish INPUT.flv URL`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::mpsc;

use obs_goaway::media::flv::FlvReader;
use obs_goaway::media::TagKind;
use obs_goaway::protocol::auth::Credentials;
use obs_goaway::session::{self, MigrationMode, ReconnectPolicy, SessionConfig, SessionEvent};
use obs_goaway::source::{spawn_flv_source, Pacing, SourceProgress};
use obs_goaway::transport::{tls, RtmpUrl, Scheme};

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// FLV file to publish ("-" for standard input).
    input: PathBuf,
    /// rtmp://host/app/key (port optional, default 1935) or rtmps://host/app/key (443);
    /// rtmp://user:password@host/app/key to authenticate (percent-encode special characters)
    url: String,
    /// Username for servers that require authentication (instead of user@ in the URL).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Password for --user (or user@ in the URL); better from the environment, which keeps
    /// it out of the shell history.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "GOAWAY_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Pace by timestamps, as a live source would.
    #[arg(long)]
    realtime: bool,
    /// With --realtime: this many times real time.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    speed: f64,
    /// Do not announce Go Away / Reconnect Request support.
    #[arg(long)]
    no_goaway: bool,
    /// Extra CA certificates (PEM) to trust for rtmps://.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Close the old connection before opening the new one on every move.
    #[arg(long)]
    break_before_make: bool,
    /// Start each connection's timestamps at zero.
    #[arg(long)]
    rebase_timestamps: bool,
    /// Seconds to wait for a keyframe after a signal before switching anyway.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    keyframe_deadline: f64,
    /// Reconnection attempts after an unplanned drop (the first is made at once).
    #[arg(long, default_value_t = 25)]
    max_retries: u32,
    /// Seconds between the first reconnection attempts (then x1.5 each time); the same
    /// defaults as the OBS plugin's.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    retry_delay: f64,
    /// Attempts made at --retry-delay before the delay starts growing.
    #[arg(long, default_value_t = 5, value_name = "N")]
    steady_attempts: u32,
    /// Longest wait between reconnection attempts.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    max_retry_delay: f64,
    /// Media kept for resuming after a drop, in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    buffer_secs: f64,
    /// Media kept for resuming after a drop, in MiB (whichever limit is hit first).
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    buffer_mib: usize,
}

/// The Enhanced RTMP FourCCs of the first video tags, for `fourCcList`.
fn enhanced_fourccs(path: &PathBuf) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(reader) = FlvReader::new(std::io::BufReader::new(file)) else {
        return Vec::new();
    };
    let mut list: Vec<String> = Vec::new();
    for tag in reader.take(200).flatten() {
        if tag.kind == TagKind::Video && tag.data.first().is_some_and(|b| b & 0x80 != 0) {
            if let Some(fourcc) = tag.data.get(1..5).and_then(|f| std::str::from_utf8(f).ok()) {
                if !list.iter().any(|f| f == fourcc) {
                    list.push(fourcc.to_owned());
                }
            }
        }
    }
    list
}

/// The credentials from the URL's user info, `--user` and `--password` (or
/// `GOAWAY_PASSWORD`): each part from one place only, both parts or neither.
fn credentials(
    url: &RtmpUrl,
    user: Option<String>,
    password: Option<String>,
) -> Result<Option<Credentials>, String> {
    let (url_user, url_password) = url.credentials().map_or((None, None), |c| {
        let password = (!c.password().is_empty()).then(|| c.password().to_owned());
        (Some(c.username.clone()), password)
    });
    let user = match (url_user, user) {
        (Some(_), Some(_)) => {
            return Err("give the user in the URL or with --user, not both".into())
        }
        (from_url, flag) => from_url.or(flag),
    };
    let password = match (url_password, password) {
        (Some(_), Some(_)) => {
            return Err(
                "give the password in the URL or with --password / GOAWAY_PASSWORD, not both"
                    .into(),
            )
        }
        (from_url, other) => other.or(from_url),
    };
    match (user, password) {
        (Some(user), Some(password)) => Ok(Some(Credentials::new(user, password))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(
            "a user needs a password: --password, GOAWAY_PASSWORD or user:password@ in the URL"
                .into(),
        ),
        (None, Some(_)) => Err(
            "a password needs a user: --user or user@ in the URL (or unset GOAWAY_PASSWORD)".into(),
        ),
    }
}

pub(crate) async fn run(args: PublishArgs, quiet: bool) -> Result<ExitCode, String> {
    let url = RtmpUrl::parse(&args.url).map_err(|e| e.to_string())?;
    let reconnect = reconnect_policy(&args)?;
    let credentials = credentials(&url, args.user, args.password)?;
    let url = url.with_credentials(credentials);
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        return Err(format!(
            "--speed must be a positive number, not {}",
            args.speed
        ));
    }
    let reader: Box<dyn std::io::Read + Send> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let file = std::fs::File::open(&args.input)
            .map_err(|e| format!("{}: {e}", args.input.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    let mut config = SessionConfig::new(url.clone());
    config.link.announce_go_away = !args.no_goaway;
    config.link.announce_reconnect = !args.no_goaway;
    config.link.fourcc_list = enhanced_fourccs(&args.input);
    if url.scheme == Scheme::Rtmps || args.ca_file.is_some() {
        config.link.tls =
            Some(tls::client_config(args.ca_file.as_deref()).map_err(|e| e.to_string())?);
    }
    if args.break_before_make {
        config.mode = MigrationMode::BreakBeforeMake;
    }
    config.rebase_timestamps = args.rebase_timestamps;
    config.keyframe_deadline = super::seconds(args.keyframe_deadline, "--keyframe-deadline")?;
    config.reconnect = reconnect;
    config.buffer.max_duration = super::seconds(args.buffer_secs, "--buffer-secs")?;
    config.buffer.max_bytes = args.buffer_mib.saturating_mul(1 << 20);
    config.live_source = args.realtime;

    let (sender, receiver) = session::packet_channel(256);
    let progress = Arc::new(SourceProgress::default());
    let pacing = if args.realtime {
        Pacing::Timestamps { speed: args.speed }
    } else {
        Pacing::AsFastAsPossible
    };
    let source = spawn_flv_source(reader, sender, pacing, Arc::clone(&progress))
        .map_err(|e| format!("cannot start the file reader: {e}"))?;
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut session = tokio::spawn(session::run(config, receiver, Some(event_tx)));
    // On a terminal one status line updates every second; in a log, a line every 10 s.
    let tty = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 10 }));
    ticker.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut session => break result.map_err(|e| format!("session task failed: {e}"))?,
            Some(event) = event_rx.recv() => if !quiet { clear_status(tty); print_event(&event) },
            _ = ticker.tick() => if !quiet { print_progress(&progress, started, tty) },
        }
    };
    let source_result = source
        .join()
        .map_err(|_| "the file reader thread panicked".to_string())?;
    let report = result.map_err(|e| e.to_string())?;
    source_result.map_err(|e| format!("{}: {e}", args.input.display()))?;
    if !quiet {
        clear_status(tty);
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "goaway: published {} frames ({}) in {:.2} s ({:.1} Mb/s); {} connection(s), {} move(s), {} duplicated, {} lost",
            report.frames_in,
            super::bytes(report.bytes_in),
            elapsed,
            report.bytes_in as f64 * 8.0 / elapsed.max(1e-9) / 1e6,
            report.connections,
            report.cutovers.len(),
            report.duplicates,
            report.lost,
        );
    }
    Ok(if report.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Reconnection as the OBS plugin does it by default: the first attempt at once, five more a
/// second apart, then growing by half each time.
fn reconnect_policy(args: &PublishArgs) -> Result<ReconnectPolicy, String> {
    Ok(ReconnectPolicy {
        immediate_first: true,
        initial_delay: super::seconds(args.retry_delay, "--retry-delay")?,
        steady_attempts: args.steady_attempts,
        max_delay: super::seconds(args.max_retry_delay, "--max-retry-delay")?,
        max_retries: args.max_retries,
        ..ReconnectPolicy::default()
    })
}

fn print_progress(progress: &SourceProgress, started: Instant, tty: bool) {
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let line = format!(
        "goaway: {} frames, {}, {:.1} Mb/s, media time {:.1} s",
        progress.frames.load(Ordering::Relaxed),
        super::bytes(bytes),
        bytes as f64 * 8.0 / elapsed / 1e6,
        progress.timestamp.load(Ordering::Relaxed) as f64 / 1000.0,
    );
    if tty {
        eprint!("\r\x1b[K{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Erases the updating status line before other output.
fn clear_status(tty: bool) {
    if tty {
        eprint!("\r\x1b[K");
    }
}

fn print_event(event: &SessionEvent) {
    match event {
        SessionEvent::Publishing { url, connect_time } => {
            eprintln!(
                "goaway: publishing to {url} (connected in {} ms)",
                connect_time.as_millis()
            );
        }
        SessionEvent::MoveRequested { cause, target } => {
            eprintln!("goaway: server sent {cause}: moving to {target} at the next keyframe");
        }
        SessionEvent::Moved(c) => eprintln!(
            "goaway: moved ({}) at {} ms, {} ms after the {}{}",
            c.kind,
            c.keyframe_timestamp,
            c.took.as_millis(),
            c.cause,
            if c.duplicates > 0 {
                format!(", {} frames resent", c.duplicates)
            } else {
                String::new()
            }
        ),
        SessionEvent::ConnectionLost { error } => eprintln!("goaway: connection lost: {error}"),
        SessionEvent::Reconnecting { attempt, delay } => {
            eprintln!(
                "goaway: reconnecting in {:.1} s (attempt {attempt})",
                delay.as_secs_f64()
            );
        }
        SessionEvent::FramesDropped { count } => {
            eprintln!("goaway: buffer full: dropped {count} frames");
        }
        SessionEvent::BitrateChanged(change) => eprintln!("goaway: {change}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        publish: PublishArgs,
    }

    /// The CLI reconnects as the plugin does by default (src/obs/settings.rs: 1 s, 5
    /// steady attempts): at once, then every second, then backing off.
    #[test]
    fn reconnection_defaults_are_the_plugins() {
        use clap::Parser;
        let cli = Cli::parse_from(["publish", "in.flv", "rtmp://h/app/key"]);
        let policy = reconnect_policy(&cli.publish).unwrap();
        let delays: Vec<u64> = (0..8).map(|a| policy.delay(a).as_millis() as u64).collect();
        assert_eq!(delays, [0, 1000, 1000, 1000, 1000, 1000, 1500, 2250]);
        assert_eq!(policy.max_retries, 25);
    }

    fn from(
        url: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Option<Credentials>, String> {
        let url = RtmpUrl::parse(url).unwrap();
        credentials(&url, user.map(Into::into), password.map(Into::into))
    }

    #[test]
    fn each_part_of_the_credentials_comes_from_one_place() {
        let obs = Some(Credentials::new("obs", "pw"));
        assert_eq!(from("rtmp://obs:pw@h/live/k", None, None), Ok(obs.clone()));
        assert_eq!(
            from("rtmp://obs@h/live/k", None, Some("pw")),
            Ok(obs.clone())
        );
        assert_eq!(from("rtmp://h/live/k", Some("obs"), Some("pw")), Ok(obs));
        assert_eq!(from("rtmp://h/live/k", None, None), Ok(None));
        for (url, user, password) in [
            ("rtmp://obs:pw@h/live/k", Some("obs"), None),
            ("rtmp://obs:pw@h/live/k", None, Some("pw")),
            ("rtmp://h/live/k", Some("obs"), None),
            ("rtmp://h/live/k", None, Some("pw")),
        ] {
            assert!(
                from(url, user, password).is_err(),
                "{url} {user:?} {password:?}"
            );
        }
    }
}
