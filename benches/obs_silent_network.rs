//! Networks that die silently (issue 15) in real OBS, OBS's own RTMP output and obs-goaway
//! side by side on the same fault: OBS 29.0.2 (host), 30.2.3 (trixie root) and 32.2.2 (sid
//! root) in one network namespace, the reference ingest in another, every packet dropped in
//! the ingest's for 3, 12 and 25 s, 9 s after the first frame (`common::obs_silent`). Prints
//! each run's timeline, then one table row per run: the README's side-by-side rows.
//!
//! Run as root after `tests/run.sh` prepared the machine (OBS, the Debian roots, nftables,
//! the release build of the plugin): `cargo bench --bench obs_silent_network [FILTER]`, where
//! FILTER keeps the rows whose "version output case" contains it (`29.0.2`, `obs-goaway`,
//! `silent 3 s`). About 17 minutes: 18 runs of 36 to 44 s, one OBS at a time.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::obs::ObsVersion;
use common::obs_silent::{run, Output};
use common::silent::Measured;

fn main() {
    common::netns::require_root();
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut rows = Vec::new();
    for version in ObsVersion::ALL {
        for secs in [3, 12, 25] {
            let case = format!("silent {secs} s");
            for output in Output::ALL {
                let name = format!("{} {} {case}", version.version(), output.name());
                if only.as_deref().is_some_and(|filter| !name.contains(filter)) {
                    continue;
                }
                let measured = run(version, output, Duration::from_secs(secs));
                eprintln!("{name}:\n{}\n", measured.outcome);
                rows.push(
                    measured
                        .measured
                        .row(&[version.version(), output.name(), &case]),
                );
            }
        }
    }
    println!("{}", Measured::header(&["OBS", "output", "case"]));
    for row in rows {
        println!("{row}");
    }
}
