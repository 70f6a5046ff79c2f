//! OBS's own RTMP output and obs-goaway's, side by side, in real OBS (29.0.2 on the host,
//! 30.2.3 and 32.2.2 in the Debian trixie and sid roots) through the same bad day at the ingest: Go Away at 6 s,
//! a Reconnect Request naming another ingest at 12 s, every connection dropped and refused
//! for 3 s at 18 s (`common::obs::run_outage_scenario`). Prints what reached the servers.
//!
//! Run as root after `tests/run.sh` prepared the machine: `cargo bench --bench obs_side_by_side`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::obs::{
    rtmp_custom, run_outage_scenario, ObsVersion, PluginInstall, ScenarioOutcome, SCENARIO_KEY,
};
use serde_json::json;

fn row(version: ObsVersion, output: &str, o: &ScenarioOutcome) {
    let fps = f64::from(o.fps);
    println!(
        "| {:<7} | {:<16} | {:>4} of {:<4} ({:>4.1} s) | {:>6} | {:>8.2} s | {:>5} | {:<3} | {:<3} |",
        version.version(),
        output,
        o.video_lost_by_clock.max(0),
        o.expected_video_frames,
        o.video_lost_by_clock.max(0) as f64 / fps,
        o.video_lost_by_obs_count.max(0),
        o.longest_stall.as_secs_f64(),
        o.connections,
        if o.ingests.get(1).is_some_and(|b| b.stats.is_some()) {
            "yes"
        } else {
            "no"
        },
        if o.timestamps_restarted { "yes" } else { "no" },
    );
}

fn main() {
    let mut outcomes = Vec::new();
    for version in ObsVersion::ALL {
        let builtin =
            run_outage_scenario(version, |server| rtmp_custom(server, SCENARIO_KEY), |p| p);
        let goaway = run_outage_scenario(
            version,
            |server| json!({"type": "goaway_rtmp_service", "settings": {"server": server, "key": SCENARIO_KEY}}),
            |p| p.plugin(PluginInstall::obs_goaway()),
        );
        outcomes.push((version, builtin, goaway));
    }
    for (_, builtin, goaway) in &outcomes {
        println!("{builtin}\n\n{goaway}\n");
    }
    println!("| OBS | output | video missing from the recording | never sent by OBS | longest stall | connections | followed the redirect | timestamps restarted |");
    println!("|---|---|---|---|---|---|---|---|");
    for (version, builtin, goaway) in &outcomes {
        row(*version, "OBS rtmp_output", builtin);
        row(*version, "obs-goaway", goaway);
    }
}
