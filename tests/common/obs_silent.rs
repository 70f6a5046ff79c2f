//! Real OBS through a network that fails the way real ones do (issue 15), OBS's own RTMP
//! output and obs-goaway side by side on the same fault: OBS runs in the publisher's network
//! namespace (`common::netns`), the reference ingest (the code `goaway serve` runs, with its
//! defaults) listens in the ingest's, and one of `common::silent`'s cases happens [`Case::at`]
//! after the first frame arrived: the ingest's namespace drops every packet for a while (with
//! the plugin's resume buffer shortened where the case says so), the publisher's link is
//! replaced by another (a path change), or the path is rate-limited with `tbf`. Shared by
//! tests/obs_silent_network.rs (which asserts) and benches/obs_silent_network.rs (which prints
//! the table); the figures are the ones the CLI's cases report (`common::silent::Measured`),
//! so the OBS rows and the CLI's are the same cases measured the same way.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use obs_goaway::ingest::{Ingest, IngestConfig};
use serde_json::{json, Value};

use super::netns::{Net, Silence, Slow};
use super::obs::{
    ingest_runtime, received, rtmp_custom, start_streaming, stop_and_measure, Arrivals, ObsRun,
    ObsVersion, PluginInstall, ProfileBuilder, ScenarioOutcome, SCENARIO_KEY,
};
use super::silent::{number_before, Case, Fault, Measured};

/// How long a run streams at least (issue 15's runs: 36 s).
const RUN: Duration = Duration::from_secs(36);
/// How long a run streams on after the fault is over, at least: time to resume and resend.
const AFTER_FAULT: Duration = Duration::from_secs(10);
/// How often the run's clock looks at the ingest and at OBS's log.
const TICK: Duration = Duration::from_millis(50);

/// Which output OBS streams with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// OBS's own `rtmp_output`, through the "Custom..." service.
    Builtin,
    /// obs-goaway, through its service (the plugin installed in the profile).
    Goaway,
}

impl Output {
    /// Both, OBS's own first (the table's order).
    pub const ALL: [Self; 2] = [Self::Builtin, Self::Goaway];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Builtin => "OBS's own RTMP output",
            Self::Goaway => "obs-goaway",
        }
    }

    /// The profile streaming to `server` with this output, for `case` (OBS's own output
    /// has no resume buffer: a case's buffer only shortens obs-goaway's).
    fn profile(self, version: ObsVersion, server: &str, case: &Case) -> ProfileBuilder {
        let profile = ProfileBuilder::new(version);
        match self {
            Self::Builtin => profile.service(rtmp_custom(server, SCENARIO_KEY)),
            Self::Goaway => profile
                .service(goaway_service(server, case.buffer_secs))
                .plugin(PluginInstall::obs_goaway()),
        }
    }

    /// What the output logs when it decides that its connection is gone (OBS's
    /// rtmp_output: a send error, the disconnect, its reconnect timer) or that the path
    /// is silent (obs-goaway).
    fn detections(self) -> &'static [&'static str] {
        match self {
            Self::Builtin => &["RTMP send error", "Disconnected from", "Reconnecting in"],
            Self::Goaway => &["] path silent for", "; resuming losslessly"],
        }
    }
}

/// `service.json` for obs-goaway's service; `buffer_secs` sets its resume buffer's length
/// (whole seconds in the plugin's settings, as its dialog offers them).
fn goaway_service(server: &str, buffer_secs: Option<f64>) -> Value {
    let mut service =
        json!({"type": "goaway_rtmp_service", "settings": {"server": server, "key": SCENARIO_KEY}});
    if let Some(secs) = buffer_secs {
        service["settings"]["goaway_buffer_secs"] = json!(secs.round() as i64);
    }
    service
}

/// What one run measured.
#[derive(Debug)]
pub struct ObsSilent {
    /// The table's figures. `video_missing` is the larger of two counts that each miss
    /// some losses: by the clock (frames a lossless stream of this length has, less those
    /// recorded: blind to frames dropped while OBS streams on after the quit request) and
    /// in the timestamps' gaps (blind to frames an ingest skipped as repeats after OBS's own
    /// output restarted its clock); `corrupt` means the recording does not decode
    /// completely; `frames_resent` and `lost` are obs-goaway's own counts (OBS's own output
    /// resends nothing: 0).
    pub measured: Measured,
    /// Everything else: the timeline, OBS's frame count and log, the recording.
    pub outcome: ScenarioOutcome,
    /// Video frames of the recording ffmpeg decodes.
    pub decoded_video: u64,
}

/// Detection lines `output` logged so far (in the log files: OBS flushes each line there).
fn detections(obs: &ObsRun, output: Output) -> usize {
    let log = obs.log_files();
    output
        .detections()
        .iter()
        .map(|needle| log.matches(needle).count())
        .sum()
}

/// A fault in place, undone when its guard drops at the case's end (a path change has
/// nothing to undo).
enum Ongoing<'a> {
    Silent { _guard: Silence<'a> },
    Slow { _guard: Slow<'a> },
    Over,
}

/// Starts `fault` on `net`; what it is, for the timeline.
fn begin(net: &Net, fault: Fault) -> (Ongoing<'_>, String) {
    let secs = fault.length().as_secs_f32();
    match fault {
        Fault::Silence(_) => (
            Ongoing::Silent {
                _guard: net.silent(),
            },
            format!("the ingest's namespace drops every packet for {secs:.1}s"),
        ),
        Fault::PathChange => {
            net.change_path();
            (
                Ongoing::Over,
                "path change: a second link to the router, the first one deleted".into(),
            )
        }
        Fault::Slow(kbit, _) => (
            Ongoing::Slow {
                _guard: net.slow(kbit),
            },
            format!("the path is limited to {kbit} kbit/s (tbf) for {secs:.1}s"),
        ),
    }
}

/// Streams with `version` and `output` through `case`'s fault, and measures it.
pub fn run(version: ObsVersion, output: Output, case: &Case) -> ObsSilent {
    version.require();
    let net = Net::new();
    let runtime = ingest_runtime();
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 1935));
    let ingest = net
        .in_ingest_ns(|| {
            runtime.block_on(Ingest::start(IngestConfig::new(listen, dir.path().into())))
        })
        .expect("starting the ingest in its namespace");
    let server = format!("rtmp://{}:1935/live", net.ingest_addr());
    let profile = output
        .profile(version, &server, case)
        .netns(&net.pub_ns)
        .build();
    let (obs, first_frame, mut timeline) = start_streaming(profile, &ingest, "the ingest", &server);
    let length = case.fault.length();
    let end = RUN.max(case.at + length + AFTER_FAULT);
    let mut arrivals = Arrivals::default();
    let mut ongoing = Ongoing::Over;
    let mut fault_at = None;
    let mut detections_before = 0;
    let mut time_to_detect = None;
    loop {
        let now = first_frame.elapsed();
        arrivals.sample(now, received(&ingest), &mut timeline);
        match fault_at {
            None if now >= case.at => {
                detections_before = detections(&obs, output);
                let (fault, what) = begin(&net, case.fault);
                ongoing = fault;
                fault_at = Some(now);
                timeline.push((now, what));
            }
            Some(at) => {
                if !matches!(ongoing, Ongoing::Over) && now >= at + length {
                    ongoing = Ongoing::Over;
                    timeline.push((now, "the path is back".into()));
                }
                if time_to_detect.is_none() && detections(&obs, output) > detections_before {
                    time_to_detect = Some(now - at);
                    timeline.push((now, format!("{} noticed", output.name())));
                }
            }
            None => {}
        }
        if now >= end {
            break;
        }
        // The run's clock: the fault's schedule and the samples.
        std::thread::sleep(TICK);
    }
    drop(ongoing);
    let streamed = first_frame.elapsed();
    let outcome = stop_and_measure(obs, timeline, &[("ingest", &ingest)], streamed, &arrivals);
    drop(ingest);
    let recording = outcome.ingests[0].stats.as_ref().map(|s| s.path.clone());
    let decoded_video = recording.map_or(0, |path| super::ffprobe_decoded_frames(&path).0);
    let log = outcome.exit.log.clone();
    // obs-goaway's own counts, from its lines on OBS's console (the log files repeat them):
    // "move: ... 73 frames resent", "resume buffer full: 12 frames dropped".
    let total = |marker: &str, word: &str| -> u64 {
        outcome
            .exit
            .console
            .lines()
            .filter(|l| l.contains("[obs-goaway]") && l.contains(marker))
            .filter_map(|l| number_before(l, word))
            .sum()
    };
    let publisher_ok =
        outcome.exit.status.success() && !outcome.exit.killed && !log.contains("stream stopped: ");
    let measured = Measured {
        video_frames: outcome.expected_video_frames,
        video_missing: (outcome.video_lost_by_clock.max(0) as u64).max(outcome.video_lost_in_gaps),
        corrupt: decoded_video < outcome.video_frames,
        longest_stall: outcome.longest_stall,
        connections: outcome.connections,
        frames_resent: total("frames resent", "frames"),
        lost: total("resume buffer full", "frames"),
        time_to_detect,
        publisher_ok,
        log,
    };
    ObsSilent {
        measured,
        outcome,
        decoded_video,
    }
}
