//! `goaway serve`: the reference ingest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use obs_goaway::ingest::{AuthConfig, Ingest, IngestConfig, ListenerConfig, SignalKind};
use obs_goaway::protocol::auth::{AuthMethod, Credentials};
use obs_goaway::transport::tls;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Plain RTMP address to listen on (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// RTMPS address to listen on (repeatable; needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR")]
    listen_tls: Vec<SocketAddr>,
    /// Certificate chain (PEM) for --listen-tls.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --listen-tls.
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Directory for the recordings (one KEY.flv per stream key).
    #[arg(long, value_name = "DIR")]
    record: PathBuf,
    /// Ask each publisher to move once, this many seconds after it starts.
    #[arg(long, value_name = "SECS")]
    goaway_after: Option<f64>,
    /// Ask each publisher to move every this many seconds.
    #[arg(long, value_name = "SECS")]
    goaway_every: Option<f64>,
    /// Which signal to send.
    #[arg(long, default_value = "goaway", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<SignalKind>()))]
    signal: SignalKind,
    /// tcUrl to name in reconnect requests (another server).
    #[arg(long, value_name = "URL")]
    redirect: Option<String>,
    /// Refuse a second publisher of a live key even after signalling (like nginx-rtmp).
    #[arg(long)]
    refuse_takeover: bool,
    /// Never send Acknowledgement, as some servers do not (publishers then see delivery
    /// only through TCP).
    #[arg(long)]
    no_acks: bool,
    /// Close connections that send nothing for this many seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    idle_timeout: f64,
    /// Let a new publisher of a key take over from one that has sent no media for this many
    /// seconds (0: never; a publisher that lost its path comes back at once).
    #[arg(long, default_value_t = 0.5, value_name = "SECS")]
    takeover_after_silence: f64,
    /// Require publishers to authenticate as this user (repeatable for several users).
    #[arg(long, value_name = "USER:PASSWORD", value_parser = clap::builder::ValueParser::new(user_password))]
    auth: Vec<Credentials>,
    /// Authentication scheme to ask for with --auth: adobe (as OBS and FFmpeg speak it) or
    /// llnw (Limelight).
    #[arg(long, default_value = "adobe", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<AuthMethod>()))]
    auth_method: AuthMethod,
}

/// `USER:PASSWORD` (the password may contain colons, the user may not).
fn user_password(text: &str) -> Result<Credentials, String> {
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok(Credentials::new(user, password))
        }
        _ => Err("expected USER:PASSWORD, both non-empty".into()),
    }
}

pub(crate) async fn run(args: ServeArgs, quiet: bool) -> Result<ExitCode, String> {
    let mut listeners: Vec<ListenerConfig> = args
        .listen
        .iter()
        .map(|&addr| ListenerConfig { addr, tls: None })
        .collect();
    if !args.listen_tls.is_empty() {
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            return Err("--listen-tls needs --tls-cert and --tls-key".into());
        };
        let config = tls::server_config(cert, key).map_err(|e| e.to_string())?;
        listeners.extend(args.listen_tls.iter().map(|&addr| ListenerConfig {
            addr,
            tls: Some(config.clone()),
        }));
    }
    if listeners.is_empty() {
        listeners.push(ListenerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 1935)),
            tls: None,
        });
    }
    if let Some(redirect) = &args.redirect {
        url::Url::parse(redirect).map_err(|e| format!("--redirect {redirect}: {e}"))?;
    }
    let config = IngestConfig {
        listeners,
        record_dir: args.record.clone(),
        signal: args.signal,
        signal_after: args
            .goaway_after
            .map(|s| super::seconds(s, "--goaway-after"))
            .transpose()?,
        signal_every: args
            .goaway_every
            .map(|s| super::seconds(s, "--goaway-every"))
            .transpose()?,
        redirect: args.redirect,
        refuse_takeover: args.refuse_takeover,
        close_after_signal: None,
        drop_after: None,
        idle_timeout: super::seconds(args.idle_timeout, "--idle-timeout")?,
        takeover_after_silence: Some(super::seconds(
            args.takeover_after_silence,
            "--takeover-after-silence",
        )?)
        .filter(|d| !d.is_zero()),
        auth: (!args.auth.is_empty()).then_some(AuthConfig {
            method: args.auth_method,
            users: args.auth,
        }),
        no_acknowledgements: args.no_acks,
    };
    let ingest = Ingest::start(config).await.map_err(|e| e.to_string())?;
    for (addr, tls) in ingest.local_addrs().iter().zip(
        args.listen
            .iter()
            .map(|_| false)
            .chain(args.listen_tls.iter().map(|_| true)),
    ) {
        let scheme = if tls { "rtmps" } else { "rtmp" };
        println!(
            "goaway: listening on {scheme}://{addr}/<app>/<key>, recording into {}",
            args.record.display()
        );
    }
    if !quiet {
        eprintln!("goaway: send SIGUSR1 to ask every publisher to move; Ctrl-C to stop");
    }
    wait_for_stop(&ingest).await?;
    for (name, stats) in ingest.stats() {
        println!(
            "goaway: {name}: {} frames written, {} duplicates skipped, {} connection(s), largest gap {} ms -> {}",
            stats.frames_written,
            stats.duplicates,
            stats.connections,
            stats.largest_gap.as_millis(),
            stats.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
async fn wait_for_stop(ingest: &Ingest) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind as Unix};
    let mut usr1 = signal(Unix::user_defined1()).map_err(|e| e.to_string())?;
    let mut term = signal(Unix::terminate()).map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                let n = ingest.signal_all(None);
                eprintln!("goaway: SIGUSR1: signalled {n} publisher(s)");
            }
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return r.map_err(|e| e.to_string()),
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop(_ingest: &Ingest) -> Result<(), String> {
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
}
