//! Command-line interface.

mod demo;
mod publish;
mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lossless RTMP reconnection: publish with Go Away / Reconnect Request support, run a
/// reference ingest, or watch a demonstration.
#[derive(Debug, Parser)]
#[command(name = "goaway", version, about)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish an FLV file to an RTMP/RTMPS URL, following Go Away and Reconnect Requests.
    Publish(publish::PublishArgs),
    /// Run the reference ingest: accept publishers, record each key to one FLV file.
    Serve(serve::ServeArgs),
    /// Publish the sample clip through several migrations on a local ingest and verify
    /// that nothing was lost or duplicated.
    Demo(demo::DemoArgs),
}

/// Logs go to stderr as `goaway: level: message`; `RUST_LOG` overrides the level. The
/// ingest logs connections and signals by default: that is its status output.
pub(crate) fn init_logging(args: &Args) {
    let base = u8::from(matches!(args.command, Command::Serve(_)));
    let default = match (args.quiet, args.verbose + base) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| {
            writeln!(
                buf,
                "goaway: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
}

pub(crate) async fn run(args: Args) -> Result<ExitCode, String> {
    match args.command {
        Command::Publish(a) => publish::run(a, args.quiet).await,
        Command::Serve(a) => serve::run(a, args.quiet).await,
        Command::Demo(a) => demo::run(a).await,
    }
}

/// Reads a whole FLV file into tags (for comparisons), with the path in any error.
pub(crate) fn read_flv(path: &PathBuf) -> Result<Vec<obs_goaway::media::Tag>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    obs_goaway::media::flv::FlvReader::new(std::io::BufReader::new(file))
        .and_then(|reader| reader.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A duration from a command-line number of seconds, with the flag's name in any error.
pub(crate) fn seconds(value: f64, flag: &str) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} must be a number of seconds >= 0, not {value}"))
}

/// Human-readable byte count.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
